"""Video files in and out: ``video`` (``FrameReader`` streams decoded frames, ``VideoWriter``
encodes them) and ``probe`` (what a file holds, and whether it can be decoded)."""
