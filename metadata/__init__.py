"""Facts the package ships (as `detic_cli.metadata`, read with importlib.resources through
`detic_cli.package_data.read_metadata`).

`vocabularies.json` indexes the four built-in vocabularies (LVIS v1, Objects365, OpenImages, COCO):
class count, classes file, and the name, URL, size and sha256 of each released embedding file.
The classes files hold the class names in classifier order. `make_metadata.py` makes them all from
the public files; see its docstring for the format.

`zoo.json` is the original model zoo, one record per line: `default_model`, `sections` (key -> table
heading), `backbones` (name, title, url, cache filename, how the original config names the weights,
whether the original converted them by hand, and `converter`: the key layout `detic zoo pull` maps),
`stages` (unpublished training stages: name, config, init) and `rows` (name, title, section, config,
url of the released checkpoint, training time, metrics in percent, init, vocab, and eval_overrides
where the table measured with extra KEY=VALUE settings). Rows sharing a url are one file. It is kept
by hand; tests/zoo/test_catalog.py checks every row against the original MODEL_ZOO.md.
"""
