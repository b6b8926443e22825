"""Building the two models: teaching data from Claude (`claude`, `data`), the quality gate
(`gate`), training sets, training and GGUF export (`training`), and the chain of stages that
runs them on this machine or on Modal (`build`). Heavy libraries load inside the stages."""
