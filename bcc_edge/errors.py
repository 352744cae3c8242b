"""Errors a user can cause. The CLI prints them as one line and exits non-zero; no traceback."""


class BccError(Exception):
    """A problem with the user's input (paths, options, data, artifacts)."""

    exit_code = 2


class TooManyPixels(Exception):
    """An image header announces more pixels than allowed; raised before anything is decoded
    (the decoders raise it, `decode.load_image` turns it into an ImageDecodeError)."""

    def __init__(self, width: int, height: int, limit: int):
        super().__init__(f"{width}x{height} = {width * height} pixels is over the limit of {limit} (MAX_IMAGE_PIXELS)")
