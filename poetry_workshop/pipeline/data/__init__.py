"""Teaching data: the seven tasks, the poems they read, the brief attributes, and the one
engine that generates records for any of them."""
