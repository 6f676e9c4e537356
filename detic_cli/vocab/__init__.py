"""Vocabularies as data: the built-in vocabularies, class-name lists and files, prompt templates, `.npy` files with
their sidecar, the `DETIC_HOME/vocab` cache and the resolution of `--vocab`. Names become embeddings through the
CLIP text encoder in `detic_cli.clip` (`build.embed_names`)."""
