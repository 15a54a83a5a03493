"""llama.cpp itself, from the `xllamacpp` wheel's shared library through ctypes: load a GGUF, score
text (perplexity) and continue a prompt greedily. No PyPI package ships llama.cpp's command-line
tools; the wheel exports the llama C API.

The parameter structs are taken from llama.cpp's own `*_default_params()` and passed back
whole (returned and passed in memory on x86-64, so a buffer at least as large as the struct is
enough); only the leading fields of `llama_context_params` (n_ctx, n_batch, n_ubatch, n_seq_max,
n_threads, n_threads_batch), stable across llama.cpp versions, are changed. `llama_batch`'s
layout is llama.h's.
"""

import ctypes
import glob
import math
import os

import numpy as np


class _Params(ctypes.Structure):
    _fields_ = [("raw", ctypes.c_uint8 * 1024)]


class _Batch(ctypes.Structure):
    _fields_ = [
        ("n_tokens", ctypes.c_int32),
        ("token", ctypes.POINTER(ctypes.c_int32)),
        ("embd", ctypes.POINTER(ctypes.c_float)),
        ("pos", ctypes.POINTER(ctypes.c_int32)),
        ("n_seq_id", ctypes.POINTER(ctypes.c_int32)),
        ("seq_id", ctypes.POINTER(ctypes.POINTER(ctypes.c_int32))),
        ("logits", ctypes.POINTER(ctypes.c_int8)),
    ]


_LOG = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def _quiet(_level, _text, _data):
    pass


_quiet_cb = _LOG(_quiet)


def library():
    import xllamacpp

    (path,) = glob.glob(os.path.join(os.path.dirname(xllamacpp.__file__), "xllamacpp*.so"))
    lib = ctypes.CDLL(path)
    lib.llama_log_set.argtypes = [_LOG, ctypes.c_void_p]
    lib.llama_log_set(_quiet_cb, None)
    lib.llama_backend_init()
    lib.llama_model_default_params.restype = _Params
    lib.llama_context_default_params.restype = _Params
    lib.llama_model_load_from_file.argtypes = [ctypes.c_char_p, _Params]
    lib.llama_model_load_from_file.restype = ctypes.c_void_p
    lib.llama_init_from_model.argtypes = [ctypes.c_void_p, _Params]
    lib.llama_init_from_model.restype = ctypes.c_void_p
    lib.llama_model_get_vocab.argtypes = [ctypes.c_void_p]
    lib.llama_model_get_vocab.restype = ctypes.c_void_p
    lib.llama_vocab_n_tokens.argtypes = [ctypes.c_void_p]
    lib.llama_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                   ctypes.POINTER(ctypes.c_int32), ctypes.c_int32, ctypes.c_bool, ctypes.c_bool]
    lib.llama_token_to_piece.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_char_p, ctypes.c_int32,
                                         ctypes.c_int32, ctypes.c_bool]
    lib.llama_batch_init.argtypes = [ctypes.c_int32, ctypes.c_int32, ctypes.c_int32]
    lib.llama_batch_init.restype = _Batch
    lib.llama_batch_free.argtypes = [_Batch]
    lib.llama_decode.argtypes = [ctypes.c_void_p, _Batch]
    lib.llama_get_logits_ith.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.llama_get_logits_ith.restype = ctypes.POINTER(ctypes.c_float)
    lib.llama_free.argtypes = [ctypes.c_void_p]
    lib.llama_model_free.argtypes = [ctypes.c_void_p]
    return lib


class Model:
    """A GGUF loaded by llama.cpp, on the CPU."""

    def __init__(self, lib, path, n_ctx=512, threads=None):
        self.lib = lib
        params = lib.llama_model_default_params()
        self.model = lib.llama_model_load_from_file(str(path).encode(), params)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = lib.llama_model_get_vocab(self.model)
        self.n_vocab = lib.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1

    def _context(self):
        params = self.lib.llama_context_default_params()
        fields = np.frombuffer(bytes(params.raw[:24]), dtype=np.uint32).copy()
        assert 0 < fields[0] <= 1 << 20 and 0 < fields[1] <= 1 << 20, f"unexpected llama_context_params {fields}"
        fields[0] = fields[1] = fields[2] = self.n_ctx  # n_ctx, n_batch, n_ubatch
        fields[4] = fields[5] = self.threads  # n_threads, n_threads_batch
        ctypes.memmove(params.raw, fields.tobytes(), 24)
        ctx = self.lib.llama_init_from_model(self.model, params)
        if not ctx:
            raise RuntimeError("llama.cpp could not make a context")
        return ctx

    def tokenize(self, text, bos=True, special=False):
        """Token ids of `text` (with BOS where the vocabulary asks for it and `bos`; control
        tokens written in the text parsed as such with `special`)."""
        data = text.encode()
        buf = (ctypes.c_int32 * (len(data) + 8))()
        n = self.lib.llama_tokenize(self.vocab, data, len(data), buf, len(buf), bos, special)
        if n < 0:
            raise RuntimeError("tokenization failed")
        return list(buf[:n])

    def piece(self, token):
        buf = ctypes.create_string_buffer(64)
        n = self.lib.llama_token_to_piece(self.vocab, token, buf, 64, 0, False)
        return buf.raw[:max(n, 0)].decode(errors="replace")

    def _logits(self, ctx, tokens, start, all_logits):
        batch = self.lib.llama_batch_init(len(tokens), 0, 1)
        try:
            batch.n_tokens = len(tokens)
            for i, t in enumerate(tokens):
                batch.token[i] = t
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 1 if all_logits or i == len(tokens) - 1 else 0
            if self.lib.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            rows = range(len(tokens)) if all_logits else [len(tokens) - 1]
            return np.stack([np.ctypeslib.as_array(self.lib.llama_get_logits_ith(ctx, i), (self.n_vocab,)).copy()
                             for i in rows])
        finally:
            self.lib.llama_batch_free(batch)

    def perplexity(self, tokens, window=256):
        """exp(mean −log p(token | the window's earlier tokens)), windows of `window` tokens, one
        token per decode (this llama.cpp asserts on many outputs per batch in a default context)."""
        nll, count = 0.0, 0
        for start in range(0, len(tokens) - 1, window):
            chunk = tokens[start:start + window + 1]
            if len(chunk) < 2:
                break
            ctx = self._context()
            try:
                for i in range(len(chunk) - 1):
                    logits = self._logits(ctx, [chunk[i]], i, False)[-1].astype(np.float64)
                    logits -= logits.max()
                    nll -= logits[chunk[i + 1]] - math.log(np.exp(logits).sum())
                    count += 1
            finally:
                self.lib.llama_free(ctx)
        return math.exp(nll / count)

    def greedy(self, prompt, n=16):
        tokens = self.tokenize(prompt)
        ctx = self._context()
        out = []
        try:
            logits = self._logits(ctx, tokens, 0, False)[-1]
            pos = len(tokens)
            for _ in range(n):
                t = int(np.argmax(logits))
                out.append(t)
                logits = self._logits(ctx, [t], pos, False)[-1]
                pos += 1
        finally:
            self.lib.llama_free(ctx)
        return "".join(self.piece(t) for t in out)

    def close(self):
        self.lib.llama_model_free(self.model)
