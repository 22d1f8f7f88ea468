"""What a fastText model file declares about itself, read from its header, before fastText loads it.

fastText's loader trusts the file: a ``model.bin`` cut short loads, and its missing matrix rows read as zeros, so
every answer is all zeros. Walking the file's own declarations (the layout of fastText's ``saveModel``: magic and
version, the training arguments, the dictionary, then the input and output matrices, each led by its sizes) gives
the size the file must have; a file of any other size, or matrices that disagree with the arguments, is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MAGIC, VERSION = 793712314, 12
_ARGS = struct.Struct("<12id")  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate, t
_DICT = struct.Struct("<iiiqq")  # size, nwords, nlabels, ntokens, pruneidx_size
LOSSES = {1: "hs", 2: "ns", 3: "softmax", 4: "ova"}
SUPERVISED = 3  # model_name::sup
KSUB = 256  # centroids per sub-quantizer (fastText's 8-bit codes)


class ModelFileError(ValueError):
    """The file is not a whole fastText model; the message says what its header declares and what is there."""


@dataclass(frozen=True)
class ModelLayout:
    size: int  # bytes the header's declarations add up to
    dim: int
    loss: str
    supervised: bool
    nwords: int
    nlabels: int
    input_rows: int
    output_rows: int
    quantized: bool


class _Reader:
    def __init__(self, fh: BinaryIO, size: int, path: Path):
        self.fh, self.size, self.path, self.at = fh, size, path, 0

    def take(self, n: int, what: str) -> bytes:
        data = self.fh.read(n)
        if len(data) < n:
            raise ModelFileError(f"{self.path} ends at byte {self.size} inside {what} (byte {self.at}, {n} bytes)")
        self.at += n
        return data

    def unpack(self, fmt: struct.Struct | str, what: str) -> tuple:
        fmt = struct.Struct(fmt) if isinstance(fmt, str) else fmt
        return fmt.unpack(self.take(fmt.size, what))

    def skip(self, n: int, what: str) -> None:
        """Account for ``n`` bytes without reading them (matrices are large); the total is checked at the end."""
        if n < 0:
            raise ModelFileError(f"{self.path} declares a negative size for {what}")
        self.at += n
        if self.at > self.size:
            raise ModelFileError(
                f"{self.path} has {self.size} bytes but its header declares {what} ending at byte {self.at}"
            )
        self.fh.seek(self.at)

    def word(self) -> None:
        """A dictionary entry's word: bytes up to a NUL (read in blocks, the dictionary may hold millions)."""
        while True:
            start = self.fh.tell()
            block = self.fh.read(256)
            if not block:
                raise ModelFileError(f"{self.path} ends at byte {self.size} inside the dictionary")
            end = block.find(b"\0")
            if end >= 0:
                self.at = start + end + 1
                self.fh.seek(self.at)
                return


def _matrix(r: _Reader, quantized: bool, what: str) -> tuple[int, int]:
    """(rows, columns) of a matrix, its bytes accounted for."""
    if not quantized:
        m, n = r.unpack("<qq", f"the {what} matrix's sizes")
        if m < 0 or n < 0:
            raise ModelFileError(f"{r.path} declares a {m} x {n} {what} matrix")
        r.skip(4 * m * n, f"the {what} matrix ({m} x {n} floats)")
        return m, n
    qnorm, m, n, codesize = r.unpack("<?qqi", f"the quantized {what} matrix's sizes")
    r.skip(codesize, f"the {what} matrix's codes")
    _quantizer(r, what)
    if qnorm:
        r.skip(m, f"the {what} matrix's norm codes")
        _quantizer(r, what + " norm")
    return m, n


def _quantizer(r: _Reader, what: str) -> None:
    dim, _nsubq, _dsub, _lastdsub = r.unpack("<4i", f"the {what} quantizer's sizes")
    r.skip(4 * dim * KSUB, f"the {what} quantizer's centroids")


def read_layout(path: str | Path) -> ModelLayout:
    """The layout ``path`` declares; ``ModelFileError`` when the declarations and the file disagree."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        r = _Reader(fh, size, path)
        magic, version = r.unpack("<ii", "the magic number")
        if magic != MAGIC:
            raise ModelFileError(f"{path} is not a fastText model (magic number {magic}, expected {MAGIC})")
        if version > VERSION:
            raise ModelFileError(f"{path} is fastText file version {version}; this loader reads up to {VERSION}")
        args = r.unpack(_ARGS, "the training arguments")
        dim, loss, model, bucket = args[0], args[6], args[7], args[8]
        if dim <= 0:
            raise ModelFileError(f"{path} declares dimension {dim}")
        _, nwords, nlabels, _, pruneidx = r.unpack(_DICT, "the dictionary's sizes")
        if nwords < 0 or nlabels < 0 or pruneidx < -1:  # -1: never pruned
            raise ModelFileError(f"{path} declares {nwords} words, {nlabels} labels, {pruneidx} pruned entries")
        for _ in range(nwords + nlabels):
            r.word()
            r.skip(9, "a dictionary entry")  # count (int64), type (int8)
        r.skip(8 * max(pruneidx, 0), "the pruned-index table")
        (quant_input,) = r.unpack("<?", "the input matrix's kind")
        input_rows, input_dim = _matrix(r, quant_input, "input")
        (quant_output,) = r.unpack("<?", "the output matrix's kind")
        output_rows, output_dim = _matrix(r, quant_output, "output")
    if r.at != size:
        raise ModelFileError(f"{path} has {size} bytes but its header declares {r.at}")
    supervised = model == SUPERVISED
    if input_dim != dim or output_dim != dim:
        raise ModelFileError(f"{path}: matrices of {input_dim} and {output_dim} columns for dimension {dim}")
    if not quant_input and pruneidx <= 0 and input_rows != nwords + bucket:
        raise ModelFileError(f"{path}: an input matrix of {input_rows} rows for {nwords} words + {bucket} buckets")
    if supervised and output_rows != nlabels:
        raise ModelFileError(f"{path}: an output matrix of {output_rows} rows for {nlabels} labels")
    return ModelLayout(
        size, dim, LOSSES.get(loss, str(loss)), supervised, nwords, nlabels, input_rows, output_rows, quant_input
    )
