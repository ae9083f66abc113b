"""Glue between the runtime and the engines that run it at scale (the optional extras).

- ``fakelocator.integrations.ray``: ``locate_dataset`` over a Ray Dataset of encoded images and videos
  (``pip install 'fakelocator[ray]'``);
- ``fakelocator.integrations.batch``: ``fakelocator batch``, a folder or bucket into trt-locate's
  output layout on a Ray cluster.

These modules use ``fakelocator.runtime``; the runtime never imports them (docs/scale.md).
"""
