"""Key maps from upstream backbone layouts to the project's detector keys, one module per backbone family
(`resnet`, `swin`, `convnext`). Each layout is a pure function `state_dict -> (detector state_dict, unused
source keys)`, registered in the family's `KEY_MAPS` under its layout name (what `detic convert-pretrained
--kind` and a zoo backbone's `converter` say)."""
