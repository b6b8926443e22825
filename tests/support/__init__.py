"""What the tests share that is not a fixture: the command line in a subprocess, a studio on
scripted models, and the gate's hand-written test poems."""
