"""One image: Pillow at arm's length, pixel rules (modes, orientation, channels, resizing),
structure checks of encoded bytes, and loading an image into what a record stores."""
