"""`detic data prepare` / `detic data status`: derive the original Detic training and evaluation
files from the public raw datasets (one module per target; `registry.TARGETS` lists them)."""
