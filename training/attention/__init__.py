"""Face-parsing attention for training (paper Sec. IV-C, Fig. 7): FPM(X', p) → region of p → blur.

- ``labels``: the 19 CelebAMask-HQ labels, the two parsers' numberings, property → region;
- ``maps``: the widened, floored attention map;
- ``parsing``: facexlib's BiSeNet / ParseNet from local weights (never downloaded);
- ``cache``: label maps cached next to the dataset;
- ``provider``: ``FaceAttention`` (the dataset's ``attention_provider``), ``AttentionConfig``,
  ``build_attention``.

See docs/faces.md.
"""
