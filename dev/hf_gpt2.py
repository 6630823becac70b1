"""
dev/hf_gpt2.py -- Hugging Face GPT-2 checkpoints (model.safetensors + config.json) made and read
with json, struct, numpy and torch alone, for the tests of data/safetensors.h
(dev/test_safetensors.sh runs it; no safetensors or transformers package is needed).

  --write DIR      small GPT-2s in the layout of openai-community/gpt2 (Conv1D weights stored
                   (in, out), h.{i}.* names, the h.{i}.attn.bias / masked_bias mask buffers, no
                   lm_head), each in several variants DIR/NAME/ (F32, BF16, F16; with and without
                   the "transformer." prefix; with a tied lm_head; without config.json), with
                   DIR/NAME/logits.bin: PyTorch's logits for a fixed batch, computed by
                   dev/train_gpt.py's GPT from exactly the weights in the file (for BF16 and F16:
                   the rounded ones). DIR/variants.txt lists "NAME MODEL DTYPE DESCRIPTOR" per line.
                   Where the transformers package is installed, also DIR/odd_transformers/: the
                   odd model saved by transformers' GPT2LMHeadModel.save_pretrained, with the
                   logits of its own forward.
  --read CKPT --tokens FILE --out FILE
                   loads a checkpoint written by the C side (hf_gpt2_save), checks its format
                   from this side (header padding, tiling, names, config.json), runs the same
                   model on the tokens of logits file FILE, writes the logits to --out.
  --read-exports DIR
                   --read for every export the C test wrote: DIR/export/NAME_{f32,bf16}/ with the
                   tokens of DIR/NAME/logits.bin, logits to torch_logits.bin beside the export.
  --malformed DIR  broken variants of one small checkpoint, DIR/CASE/, and DIR/cases.txt:
                   "CASE<TAB>text the one-line error must contain".

Every model is also run through hf_forward, an independent forward pass written in Hugging
Face's terms (Conv1D x @ W + b, c_attn split into q|k|v, ...): it must agree with train_gpt.py's
GPT on our layout. That ties the mapping HF <-> ours to GPT-2's definition, not just to the
C code's idea of it.

Logits file (little-endian): int32 header[8] = {20261130, 1, B, T, V, 0, 0, 0}, then int32
tokens (B,T), then float32 logits (B,T,V).
"""
import argparse, json, math, os, struct, sys

import numpy as np   # provides: weights, file bytes
import torch         # provides: bf16 rounding, the forward passes
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_gpt as tg  # provides: parse_model, param_table, init_params, GPT, UserError

LOGITS_MAGIC, LOGITS_VERSION = 20261130, 1
EOT = 50256
# the fp32 activation bound of test_gpt.c: |a - ref| <= atol + rtol |ref|, atol = 3e-5 rms(ref)
ACT_RTOL, ACT_FLOOR = 1e-5, 3e-5

# name, descriptor, seed, batch size
MODELS = [("odd", "L3H5C60T17V311", 1337, 3), ("tiny", "L2H2C16T8V100", 7, 2),
          ("c768", "L1H12C768T4V64", 11, 1)]
# name, model, dtype, prefix, mask buffers ("F32", "BOOL" or None), lm_head, config.json
VARIANTS = [("odd_f32", "odd", "F32", "", "F32", False, True),
            ("odd_f32_prefix", "odd", "F32", "transformer.", "BOOL", False, True),
            ("odd_f32_lmhead", "odd", "F32", "", None, True, True),
            ("odd_bf16", "odd", "BF16", "", "F32", False, True),
            ("odd_bf16_prefix", "odd", "BF16", "transformer.", "BOOL", False, True),
            ("odd_f16", "odd", "F16", "", "F32", False, True),
            ("tiny_f32", "tiny", "F32", "", "F32", False, True),
            ("tiny_bf16_prefix", "tiny", "BF16", "transformer.", "BOOL", True, True),
            ("c768_noconfig", "c768", "F32", "", "F32", False, False)]

# ----------------------------------------------------------------------------------------------
# Weights: ours <-> Hugging Face's

# (our name, HF name after "h.{i}.", Conv1D) for the per-layer tensors, in our table order
LAYER = [("ln1w", "ln_1.weight", False), ("ln1b", "ln_1.bias", False),
         ("qkvw", "attn.c_attn.weight", True), ("qkvb", "attn.c_attn.bias", False),
         ("attprojw", "attn.c_proj.weight", True), ("attprojb", "attn.c_proj.bias", False),
         ("ln2w", "ln_2.weight", False), ("ln2b", "ln_2.bias", False),
         ("fcw", "mlp.c_fc.weight", True), ("fcb", "mlp.c_fc.bias", False),
         ("fcprojw", "mlp.c_proj.weight", True), ("fcprojb", "mlp.c_proj.bias", False)]

def make_weights(c, seed):
    """train_gpt.py's init, then noise on the LayerNorm and bias tensors (ones and zeros would let
    a swapped ln_1/ln_2 or a dropped bias pass), and a few bf16 rounding ties planted in wte."""
    p = tg.init_params(c, seed)
    rng = np.random.default_rng(seed)
    for name, shape, init, _, _ in tg.param_table(c):
        if init in ("ones", "zeros"):
            scale = 0.1 if init == "ones" else 0.02
            p[name] = (p[name] + scale * rng.standard_normal(shape)).astype(np.float32)
    p["wte"][c.V:] = 0.0
    ties = np.array([0x3CA38000, 0x3CA28000, 0xBCA38000, 0x3CA28001, 0x3CA37FFF, 0x00018000,
                     0x3F7F8000, 0x3F808000], np.uint32)   # ties odd/even, +-1 ulp, subnormal, carries
    p["wte"].reshape(-1)[:ties.size] = ties.view(np.float32)
    return p

def rounded(p, dtype):
    """the weights as a file of that dtype holds them (round to nearest even), back in float32"""
    if dtype == "F32":
        return p
    tdt = torch.bfloat16 if dtype == "BF16" else torch.float16
    return {k: torch.from_numpy(v).to(tdt).float().numpy() for k, v in p.items()}

def to_hf(c, p):
    """ours -> [(HF name without prefix, array)] in HF's module order; Conv1D weights transposed"""
    out = [("wte.weight", p["wte"][:c.V]), ("wpe.weight", p["wpe"])]
    for i in range(c.L):
        for ours, hf, conv in LAYER:
            a = p[ours][i]
            out.append(("h.%d.%s" % (i, hf), a.T if conv else a))
    out += [("ln_f.weight", p["lnfw"]), ("ln_f.bias", p["lnfb"])]
    return [(n, np.ascontiguousarray(a, np.float32)) for n, a in out]

def from_hf(c, t):
    """{HF name without prefix: array} -> ours (wte padded to Vp rows with zeros)"""
    wte = np.zeros((c.Vp, c.C), np.float32)
    wte[:c.V] = t["wte.weight"]
    p = {"wte": wte, "wpe": t["wpe.weight"], "lnfw": t["ln_f.weight"], "lnfb": t["ln_f.bias"]}
    for ours, hf, conv in LAYER:
        p[ours] = np.stack([t["h.%d.%s" % (i, hf)].T if conv else t["h.%d.%s" % (i, hf)] for i in range(c.L)])
    return {k: np.ascontiguousarray(v, np.float32) for k, v in p.items()}

# ----------------------------------------------------------------------------------------------
# The two forward passes

def our_logits(c, p, idx):
    """dev/train_gpt.py's GPT on our layout -> (B,T,V) float32"""
    model = tg.GPT(c, p)
    got = {}
    idx_t = torch.from_numpy(idx.astype(np.int64))
    with torch.no_grad():
        model(idx_t, idx_t.roll(-1, 1), rec=lambda n, t: got.__setitem__(n, t.clone()) if n == "logits" else None)
    return got["logits"].numpy()

def hf_forward(c, t, idx):
    """GPT-2 as transformers' GPT2LMHeadModel computes it, from HF-named tensors (no prefix):
    Conv1D(x) = x @ W + b with W (in, out); c_attn's output is [q | k | v]; heads are hs-wide
    slices; attention scaled by 1/sqrt(hs), causal; NewGELU (tanh); lm_head tied to wte."""
    T_ = {k: torch.from_numpy(v) for k, v in t.items()}
    B, T = idx.shape
    C, NH = c.C, c.NH
    hs = C // NH
    conv = lambda x, pre: x @ T_[pre + ".weight"] + T_[pre + ".bias"]
    ln = lambda x, pre: F.layer_norm(x, (C,), T_[pre + ".weight"], T_[pre + ".bias"], 1e-5)
    ids = torch.from_numpy(idx.astype(np.int64))
    x = T_["wte.weight"][ids] + T_["wpe.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(c.L):
        a = conv(ln(x, "h.%d.ln_1" % i), "h.%d.attn.c_attn" % i)
        q, k, v = (z.view(B, T, NH, hs).permute(0, 2, 1, 3) for z in a.split(C, dim=2))
        w = (q @ k.transpose(-1, -2)) / math.sqrt(hs)
        w = torch.where(causal, w, torch.tensor(torch.finfo(w.dtype).min))
        y = (torch.softmax(w, dim=-1) @ v).permute(0, 2, 1, 3).reshape(B, T, C)
        x = x + conv(y, "h.%d.attn.c_proj" % i)
        h = conv(ln(x, "h.%d.ln_2" % i), "h.%d.mlp.c_fc" % i)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        x = x + conv(h, "h.%d.mlp.c_proj" % i)
    x = ln(x, "ln_f")
    return (x @ T_["wte.weight"].T).numpy()

def check_close(what, ours, ref):
    """the fp32 activation bound; returns the max error, raises past the bound"""
    atol = ACT_FLOOR * float(np.sqrt(np.mean(ref.astype(np.float64) ** 2)))
    err = np.abs(ours.astype(np.float64) - ref)
    bad = err > atol + ACT_RTOL * np.abs(ref)
    if bad.any() or not np.isfinite(ours).all():
        raise tg.UserError("%s: max error %.3g past the bound (atol %.3g, rtol %g)" % (what, err.max(), atol, ACT_RTOL))
    return float(err.max()), atol

# ----------------------------------------------------------------------------------------------
# Files

def tensor_bytes(a, dtype):
    if dtype == "F32":
        return np.ascontiguousarray(a, "<f4").tobytes()
    if dtype == "BF16":
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(torch.bfloat16).view(torch.int16).numpy().tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(a, "<f2").tobytes()
    if dtype == "BOOL":
        return np.ascontiguousarray(a, np.bool_).tobytes()
    raise ValueError(dtype)

def assemble(entries, metadata, pad=True):
    """entries [(name, dtype, shape, bytes)] -> the bytes of a safetensors file (header padded with
    spaces to a multiple of 8, as the reference writer does)"""
    header, at = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + len(data)]}
        at += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(e[3] for e in entries)

def write_file(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)

def config_json(c, dtype):
    eot = EOT if c.V > EOT else c.V - 1
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.V,
            "n_positions": c.maxT, "n_ctx": c.maxT, "n_embd": c.C, "n_layer": c.L, "n_head": c.NH,
            "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1, "initializer_range": 0.02,
            "bos_token_id": eot, "eos_token_id": eot, "scale_attn_weights": True,
            "tie_word_embeddings": True, "torch_dtype": {"F32": "float32", "BF16": "bfloat16",
                                                         "F16": "float16"}[dtype]}

def write_logits(path, idx, logits):
    B, T, V = logits.shape
    write_file(path, struct.pack("<8i", LOGITS_MAGIC, LOGITS_VERSION, B, T, V, 0, 0, 0) +
               idx.astype("<i4").tobytes() + logits.astype("<f4").tobytes())

def read_logits(path):
    raw = open(path, "rb").read()
    h = struct.unpack("<8i", raw[:32])
    if h[0] != LOGITS_MAGIC or h[1] != LOGITS_VERSION:
        raise tg.UserError("%s: not a logits file (magic %d version %d)" % (path, h[0], h[1]))
    B, T, V = h[2:5]
    if len(raw) != 32 + 4 * B * T + 4 * B * T * V:
        raise tg.UserError("%s: %d bytes, expected %d" % (path, len(raw), 32 + 4 * B * T * (1 + V)))
    idx = np.frombuffer(raw, "<i4", B * T, 32).reshape(B, T)
    return idx, np.frombuffer(raw, "<f4", B * T * V, 32 + 4 * B * T).reshape(B, T, V)

def read_safetensors(path):
    """-> (metadata, {name: (dtype, float32 array or None for non-float)}), checking what our
    writer promises: header padded to 8, ranges tiling the data section, no duplicate keys"""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    if n % 8 or 8 + n > len(raw):
        raise tg.UserError("%s: header length %d (file %d bytes) is not a multiple of 8 inside the file" % (path, n, len(raw)))
    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise tg.UserError("%s: duplicate keys in the header" % path)
        return dict(pairs)
    header = json.loads(raw[8:8 + n].decode("utf-8"), object_pairs_hook=no_dups)
    meta = header.pop("__metadata__", None)
    data = raw[8 + n:]
    at, out = 0, {}
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, end = e["data_offsets"]
        if b != at:
            raise tg.UserError("%s: tensor %s starts at %d, expected %d (ranges must tile the data)" % (path, name, b, at))
        at = end
        buf, shape = data[b:end], tuple(e["shape"])
        count = int(np.prod(shape))
        if e["dtype"] == "F32":
            a = np.frombuffer(buf, "<f4", count)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(buf, "<u2", count).astype(np.uint32) << 16).view(np.float32)
        elif e["dtype"] == "F16":
            a = np.frombuffer(buf, "<f2", count).astype(np.float32)
        else:
            out[name] = (e["dtype"], None)
            continue
        out[name] = (e["dtype"], a.reshape(shape).astype(np.float32))
    if at != len(data):
        raise tg.UserError("%s: %d bytes after the last tensor" % (path, len(data) - at))
    return meta, out

# ----------------------------------------------------------------------------------------------
# Modes

def hf_entries(c, p, dtype, prefix, buffers, lm_head):
    """the [(name, dtype, shape, bytes)] of a checkpoint of weights p (ours)"""
    entries = []
    for name, a in to_hf(c, p):
        entries.append((prefix + name, dtype, a.shape, tensor_bytes(a, dtype)))
        if buffers is not None and name.endswith("ln_1.weight"):    # the mask buffers of layer i
            layer = name[:-len("ln_1.weight")]
            mask = np.tril(np.ones((c.maxT, c.maxT), np.float32)).reshape(1, 1, c.maxT, c.maxT)
            entries.append((prefix + layer + "attn.bias", buffers, mask.shape, tensor_bytes(mask, buffers)))
            entries.append((prefix + layer + "attn.masked_bias", "F32", (), tensor_bytes(np.float32(-1e4), "F32")))
    if lm_head:
        wte = p["wte"][:c.V]
        entries.append(("lm_head.weight", dtype, wte.shape, tensor_bytes(wte, dtype)))
    return entries

def write_all(out):
    os.makedirs(out, exist_ok=True)
    models = {}
    for name, desc, seed, B in MODELS:
        c = tg.parse_model(desc)
        idx = np.random.default_rng(seed + 1).integers(0, c.V, (B, c.maxT)).astype(np.int32)
        models[name] = (c, make_weights(c, seed), idx, desc)
    lines = []
    for vname, mname, dtype, prefix, buffers, lm_head, with_config in VARIANTS:
        c, p0, idx, desc = models[mname]
        p = rounded(p0, dtype)                  # what the file holds, exactly
        d = os.path.join(out, vname)
        os.makedirs(d, exist_ok=True)
        write_file(os.path.join(d, "model.safetensors"),
                   assemble(hf_entries(c, p, dtype, prefix, buffers, lm_head), {"format": "pt"}))
        cfg_path = os.path.join(d, "config.json")
        if with_config:
            write_file(cfg_path, (json.dumps(config_json(c, dtype), indent=2) + "\n").encode())
        elif os.path.exists(cfg_path):
            os.remove(cfg_path)
        ours = our_logits(c, p, idx)
        err, atol = check_close(vname + ": hf_forward vs train_gpt.py GPT", hf_forward(c, dict(to_hf(c, p)), idx), ours)
        write_logits(os.path.join(d, "logits.bin"), idx, ours)
        lines.append("%s %s %s %s" % (vname, mname, dtype, desc))
        print("wrote %-18s %s %-4s prefix '%s': hf_forward vs GPT max_abs %.2e (bound %.2e + 1e-5|ref|)"
              % (vname, c.describe(), dtype, prefix, err, atol))
    line = write_transformers_variant(out, models["odd"])
    if line is not None:
        lines.append(line)
    write_file(os.path.join(out, "variants.txt"), ("\n".join(lines) + "\n").encode())

def write_transformers_variant(out, model):
    """Where the transformers package is installed (it is not in Debian; the GPU machine has it):
    the odd model as transformers' own GPT2LMHeadModel, its weights set from ours, saved by its
    save_pretrained (safetensors), with the logits of ITS forward as the reference, so the C loader
    is checked against the real thing. Returns the variants.txt line, or None (and a note)."""
    try:
        import transformers
    except ImportError:
        print("transformers is not installed: the GPT2LMHeadModel variant (odd_transformers) is skipped")
        return None
    c, p, idx, desc = model
    cfg = transformers.GPT2Config(vocab_size=c.V, n_positions=c.maxT, n_embd=c.C, n_layer=c.L, n_head=c.NH,
                                  activation_function="gelu_new", layer_norm_epsilon=1e-5,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    m = transformers.GPT2LMHeadModel(cfg).eval()
    state = {n: torch.from_numpy(a.copy()) for n, a in to_hf(c, p)}
    missing, unexpected = m.transformer.load_state_dict(state, strict=False)
    missing = [n for n in missing if not n.endswith((".attn.bias", ".attn.masked_bias"))] # mask buffers
    if missing or unexpected:
        raise tg.UserError("GPT2LMHeadModel: missing %s, unexpected %s" % (missing, unexpected))
    d = os.path.join(out, "odd_transformers")
    m.save_pretrained(d, safe_serialization=True)
    with torch.no_grad():
        logits = m(torch.from_numpy(idx.astype(np.int64))).logits.float().numpy()
    err, atol = check_close("odd_transformers: GPT2LMHeadModel vs train_gpt.py GPT", logits, our_logits(c, p, idx))
    write_logits(os.path.join(d, "logits.bin"), idx, logits)
    print("wrote odd_transformers    transformers %s save_pretrained: its logits vs GPT max_abs %.2e (bound %.2e)"
          % (transformers.__version__, err, atol))
    return "odd_transformers odd F32 %s" % desc

def read_checkpoint(ckpt, tokens, out):
    """format checks of a C export (hf_gpt2_save), then its logits on the batch of `tokens`"""
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    want = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
            "tie_word_embeddings": True, "n_inner": None, "scale_attn_weights": True}
    for k, v in want.items():
        if cfg.get(k, "missing") != v:
            raise tg.UserError("%s/config.json: %s is %r, expected %r" % (ckpt, k, cfg.get(k, "missing"), v))
    if cfg["n_ctx"] != cfg["n_positions"] or abs(cfg["layer_norm_epsilon"] - 1e-5) > 1e-12:
        raise tg.UserError("%s/config.json: n_ctx / layer_norm_epsilon" % ckpt)
    c = tg.check_config(tg.Config(cfg["n_positions"], cfg["vocab_size"], cfg["n_layer"], cfg["n_head"], cfg["n_embd"]), ckpt)
    meta, t = read_safetensors(os.path.join(ckpt, "model.safetensors"))
    if meta != {"format": "pt"}:
        raise tg.UserError("%s: __metadata__ %r, expected {'format': 'pt'} (transformers requires it)" % (ckpt, meta))
    names = {n for n, _ in to_hf(c, {k: np.zeros(s, np.float32) for k, s, *_ in tg.param_table(c)})}
    if set(t) != names:
        raise tg.UserError("%s: tensors differ from GPT-2's: extra %s, missing %s" % (ckpt, sorted(set(t) - names)[:3], sorted(names - set(t))[:3]))
    dtypes = {d for d, _ in t.values()}
    want_dtype = {"float32": "F32", "bfloat16": "BF16"}[cfg["torch_dtype"]]
    if dtypes != {want_dtype}:
        raise tg.UserError("%s: dtypes %s, config.json says %s" % (ckpt, sorted(dtypes), cfg["torch_dtype"]))
    hf = {n: a for n, (_, a) in t.items()}
    idx, _ = read_logits(tokens)
    ours = our_logits(c, from_hf(c, hf), idx)
    err, atol = check_close(ckpt + ": hf_forward vs train_gpt.py GPT", hf_forward(c, hf, idx), ours)
    write_logits(out, idx, ours)
    print("read %s (%s %s): format ok, hf_forward vs GPT max_abs %.2e (bound %.2e), logits -> %s"
          % (ckpt, c.describe(), want_dtype, err, atol, out))

def write_malformed(out):
    """Broken copies of the tiny model, one per way a file can be wrong."""
    c = tg.parse_model("L2H2C16T8V100")
    p = make_weights(c, 7)
    good = hf_entries(c, p, "F32", "", "F32", False)
    cfg = (json.dumps(config_json(c, "F32")) + "\n").encode()
    os.makedirs(out, exist_ok=True)
    cases = []

    def entries_replace(target, **kw):
        """a copy of good with one entry changed: name=, dtype=, shape=, data="""
        res = []
        for n, d, s, b in good:
            if n == target:
                n, d, s, b = kw.get("name", n), kw.get("dtype", d), kw.get("shape", s), kw.get("data", b)
            res.append((n, d, s, b))
        return res

    def header_of(entries):
        h, at = {"__metadata__": {"format": "pt"}}, 0
        for n, d, s, b in entries:
            h[n] = {"dtype": d, "shape": list(s), "data_offsets": [at, at + len(b)]}
            at += len(b)
        return h

    def raw_file(header_text, data, length=None):
        h = header_text.encode() if isinstance(header_text, str) else header_text
        return struct.pack("<Q", len(h) if length is None else length) + h + data

    data = b"".join(e[3] for e in good)

    def case(name, expect, blob=None, config=cfg):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        for f in ("model.safetensors", "config.json"):
            if os.path.lexists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
        if blob is not None:
            write_file(os.path.join(d, "model.safetensors"), blob)
        if config is not None:
            write_file(os.path.join(d, "config.json"), config)
        cases.append("%s\t%s" % (name, expect))

    def with_header(mutate, expect, name, extra_data=b"", cut=0):
        h = header_of(good)
        mutate(h)
        blob = raw_file(json.dumps(h), data + extra_data)
        case(name, expect, blob[:len(blob) - cut] if cut else blob)

    good_blob = assemble(good, {"format": "pt"})
    wpe_off = header_of(good)["wpe.weight"]["data_offsets"]
    D = len(data)
    case("empty_file", "too short", b"")
    case("header_past_eof", "runs past the end of the file", struct.pack("<Q", len(good_blob)) + good_blob[8:])
    case("header_1gb", "more than the limit", struct.pack("<Q", 1 << 30) + good_blob[8:])
    case("header_tiny", "too short for a JSON object", struct.pack("<Q", 1) + good_blob[8:])
    with_header(lambda h: h["ln_f.bias"].update(data_offsets=[D, D + 64]), "'ln_f.bias'", "offsets_out_of_range")
    with_header(lambda h: h["h.0.ln_1.bias"].update(data_offsets=h["h.0.ln_1.weight"]["data_offsets"]),
                "h.0.ln_1.", "overlap")
    with_header(lambda h: h["wpe.weight"].update(data_offsets=[wpe_off[1], wpe_off[0]]), "'wpe.weight'", "end_before_begin")
    with_header(lambda h: h["h.1.mlp.c_fc.bias"].update(shape=[65]), "'h.1.mlp.c_fc.bias'", "shape_bytes")
    with_header(lambda h: h["h.0.attn.c_attn.weight"].update(shape=[48, 16]), "'h.0.attn.c_attn.weight'", "shape_transposed")
    with_header(lambda h: h["h.1.ln_2.weight"].update(shape=[4, 4]), "'h.1.ln_2.weight'", "shape_rank")
    with_header(lambda h: h["wpe.weight"].update(shape=[1 << 62, 1 << 62]), "'wpe.weight'", "shape_overflow")
    with_header(lambda h: h["ln_f.weight"].update(dtype="F99"), "'ln_f.weight'", "dtype_unknown")
    with_header(lambda h: h["wpe.weight"].update(dtype="I32"), "'wpe.weight'", "dtype_not_float")
    with_header(lambda h: h["ln_f.weight"].update(dtype="F64"), "'ln_f.weight'", "dtype_size")
    with_header(lambda h: h["h.0.ln_2.bias"].update(data_offsets=[-8, 56]), "'h.0.ln_2.bias'", "offset_negative")
    with_header(lambda h: h["h.0.ln_2.bias"].update(extra=1), "'h.0.ln_2.bias'", "entry_extra_key")
    with_header(lambda h: h["__metadata__"].update(format=1), "__metadata__", "metadata_not_string")
    with_header(lambda h: None, "after the last tensor", "trailing_data", extra_data=b"\0" * 16)
    with_header(lambda h: None, "'ln_f.weight'", "truncated_data", cut=100)
    # a hole: every offset from h.1 on moved 16 bytes up, and 16 bytes inserted
    hole = [(n, d, s, b) for n, d, s, b in good]
    k = [i for i, e in enumerate(hole) if e[0].startswith("h.1.")][0]
    blob_h = header_of(hole)
    for n, _, _, _ in hole[k:]:
        blob_h[n]["data_offsets"] = [o + 16 for o in blob_h[n]["data_offsets"]]
    split = blob_h[hole[k][0]]["data_offsets"][0] - 16
    case("gap", "belong to no tensor", raw_file(json.dumps(blob_h), data[:split] + b"\0" * 16 + data[split:]))
    # one float replaced by 8.0-style reals: offsets as JSON reals
    txt = json.dumps(header_of(good)).replace('"data_offsets": [0, ', '"data_offsets": [0.0, ', 1)
    case("offset_real", "non-negative integers", raw_file(txt, data))
    missing = [e for e in good if e[0] != "h.1.ln_2.bias"]
    case("missing_tensor", "missing tensor 'h.1.ln_2.bias'", assemble(missing, {"format": "pt"}))
    extra = good + [("h.2.ln_1.weight", "F32", (c.C,), tensor_bytes(np.ones(c.C), "F32"))]
    case("unexpected_tensor", "unexpected tensor 'h.2.ln_1.weight'", assemble(extra, {"format": "pt"}))
    mixed = entries_replace("wpe.weight", name="transformer.wpe.weight")
    case("mixed_prefix", "'transformer.wpe.weight'", assemble(mixed, {"format": "pt"}))
    ctrl = good + [("bad\nname", "F32", (1,), tensor_bytes(np.ones(1), "F32"))]
    case("control_char_name", "bad\\x0aname", assemble(ctrl, {"format": "pt"}))
    lm = good + [("lm_head.weight", "F32", (c.V, c.C), tensor_bytes(p["wte"][:c.V] * np.float32(1.0001), "F32"))]
    case("lm_head_differs", "'lm_head.weight' differs from wte.weight", assemble(lm, {"format": "pt"}))
    nan_wpe = p["wpe"].copy()
    nan_wpe[3, 5] = np.nan
    case("nonfinite", "'wpe.weight' element 53", assemble(entries_replace("wpe.weight", data=tensor_bytes(nan_wpe, "F32")), {"format": "pt"}))
    hdr = json.dumps(header_of(good))
    case("json_junk", "not valid JSON", raw_file("{not json" + " " * 7, data))
    case("trailing_junk", "is 0x78: the format pads the header with spaces", raw_file(hdr + " x", data))
    # after the object only spaces, the format's padding (Jansson passes tabs and newlines, and
    # its error for a NUL said "end of file expected near end of file")
    case("nul_padding", "is 0x00: the format pads the header with spaces", raw_file(hdr + "\0" * (8 + -len(hdr) % 8), data))
    case("newline_padding", "is 0x0a: the format pads the header with spaces", raw_file(hdr + "\n" * (8 + -len(hdr) % 8), data))
    dup = hdr[:-1] + ', "wpe.weight": ' + json.dumps(header_of(good)["wpe.weight"]) + "}"
    case("duplicate_keys", "duplicate object key", raw_file(dup, data))
    case("not_an_object", "not a JSON object", raw_file("[1, 2]  ", data))
    case("nul_in_name", "not valid JSON", raw_file(hdr.replace('"wpe.weight"', '"wpe\\u0000.weight"'), data))
    case("bad_utf8", "not valid JSON", raw_file(hdr.encode().replace(b'"wpe.weight"', b'"wpe\xff.weight"'), data))
    case("config_junk", "config.json: not valid JSON", good_blob, config=b"{\"n_layer\": 2,")
    case("config_no_head", "no \"n_head\"", good_blob, config=cfg.replace(b'"n_head": 2, ', b""))
    case("config_bad_eps", "layer_norm_epsilon", good_blob, config=cfg.replace(b'"layer_norm_epsilon": 1e-05', b'"layer_norm_epsilon": 1e-06'))
    case("config_big_head", "not divisible", good_blob, config=cfg.replace(b'"n_head": 2', b'"n_head": 3'))
    case("config_mismatch", "'wpe.weight' has shape [8, 16], expected [9, 16]", good_blob, config=cfg.replace(b'"n_positions": 8', b'"n_positions": 9'))
    case("no_config_odd_size", "head count is unknown", good_blob, config=None)
    case("no_file", "model.safetensors: cannot open", None)
    # a config.json that is there but cannot be read is an error, not "no config.json" (whose
    # head count would be guessed): a dangling symlink, as in a Hugging Face cache missing a blob
    case("config_dangling_symlink", "config.json: cannot open: a symbolic link", good_blob, config=None)
    os.symlink("../../blobs/missing", os.path.join(out, "config_dangling_symlink", "config.json"))
    # what parsing the header costs is bounded before the parser runs: 32 MB of empty arrays cost
    # Jansson 1.4 GB (dev/test_safetensors.sh runs these under ulimit -v 1 GB)
    arrays = '{"x":[' + "[]," * ((32 << 20) // 3) + '[]]}'
    case("header_empty_arrays", "JSON items", raw_file(arrays + " " * (-len(arrays) % 8), b""))
    long_name = '{"%s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}' % ("w" * (2 << 20))
    case("header_long_name", "string or number of more than", raw_file(long_name + " " * (-len(long_name) % 8), b"\0" * 4))
    # a config.json of GPT-2 medium (355 M weights: 1.4 GB as float) beside a file of the tiny model
    # whose wte is a (sparse) 819 MB BF16 tensor, so the file is as large as medium's BF16 weights:
    # its names and shapes are checked against the config before the weights are allocated
    med = dict(json.loads(cfg), n_layer=24, n_head=16, n_embd=1024, n_positions=1024, vocab_size=50257)
    big = [("wte.weight", "BF16", (400000, 1024), None)] + [e for e in good if e[0] != "wte.weight"]
    h, at = {"__metadata__": {"format": "pt"}}, 0
    for n, d, sh, b in big:
        size = 2 * sh[0] * sh[1] if b is None else len(b)
        h[n] = {"dtype": d, "shape": list(sh), "data_offsets": [at, at + size]}
        at += size
    htext = json.dumps(h).encode()
    htext += b" " * (-len(htext) % 8)
    case("config_bigger_than_file", "missing tensor 'h.2.ln_1.weight'", None, config=(json.dumps(med) + "\n").encode())
    with open(os.path.join(out, "config_bigger_than_file", "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(htext)) + htext)
        f.seek(2 * 400000 * 1024, 1)   # a hole: no disk space, no write
        f.write(b"".join(e[3] for e in big[1:]))
    write_file(os.path.join(out, "cases.txt"), ("\n".join(cases) + "\n").encode())
    print("wrote %d malformed checkpoints under %s" % (len(cases), out))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", metavar="DIR")
    ap.add_argument("--read", metavar="CKPT")
    ap.add_argument("--tokens", metavar="LOGITS_FILE")
    ap.add_argument("--out", metavar="FILE")
    ap.add_argument("--read-exports", metavar="DIR")
    ap.add_argument("--malformed", metavar="DIR")
    a = ap.parse_args()
    torch.set_num_threads(1)   # the same sums in every run: --read of an F32 export must match bit for bit
    try:
        if a.write:
            write_all(a.write)
        elif a.read:
            if not a.tokens or not a.out:
                raise tg.UserError("--read needs --tokens and --out")
            read_checkpoint(a.read, a.tokens, a.out)
        elif a.read_exports:
            for line in open(os.path.join(a.read_exports, "variants.txt")):
                name = line.split()[0]
                for kind in ("f32", "bf16"):
                    ckpt = os.path.join(a.read_exports, "export", "%s_%s" % (name, kind))
                    read_checkpoint(ckpt, os.path.join(a.read_exports, name, "logits.bin"),
                                    os.path.join(ckpt, "torch_logits.bin"))
        elif a.malformed:
            write_malformed(a.malformed)
        else:
            raise tg.UserError("give --write DIR, --read CKPT --tokens FILE --out FILE, --read-exports DIR "
                               "or --malformed DIR")
    except tg.UserError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)

if __name__ == "__main__":
    main()
