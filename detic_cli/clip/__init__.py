"""CLIP's text encoder as the vocabulary tools use it: its BPE merge list, its checkpoints (local files or
open_clip's pretrained weights) and sentence encoding. The tower and the tokenizer themselves are pure
modules in `detic_cli.modeling.text`; the files they are built from are read here."""
