# A Llama-shaped model of 1.28 GB in f32 (constant fills keep it fast to make), to measure
# moe-convert's peak memory on a model far larger than its largest tensor (the 262 MB embedding).
#   python3 bench/make_large_hf_model.py OUT_DIR    (needs numpy and the safetensors package)
import json, os, sys
import numpy as np
from safetensors.numpy import save_file
D, F, L, V, H, KV = 2048, 5632, 4, 32000, 16, 8
hd = D // H
cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": V, "hidden_size": D,
       "intermediate_size": F, "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": KV,
       "hidden_act": "silu", "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
       "tie_word_embeddings": False, "rope_scaling": None}
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
json.dump(cfg, open(os.path.join(out, "config.json"), "w"))
t = {"model.embed_tokens.weight": np.full((V, D), 0.01, np.float32), "model.norm.weight": np.ones(D, np.float32),
     "lm_head.weight": np.full((V, D), 0.02, np.float32)}
for i in range(L):
    p = f"model.layers.{i}."
    t[p + "input_layernorm.weight"] = np.ones(D, np.float32)
    t[p + "post_attention_layernorm.weight"] = np.ones(D, np.float32)
    t[p + "self_attn.q_proj.weight"] = np.full((D, D), 0.001 * i, np.float32)
    t[p + "self_attn.k_proj.weight"] = np.full((KV * hd, D), 0.002, np.float32)
    t[p + "self_attn.v_proj.weight"] = np.full((KV * hd, D), 0.003, np.float32)
    t[p + "self_attn.o_proj.weight"] = np.full((D, D), 0.004, np.float32)
    t[p + "mlp.gate_proj.weight"] = np.full((F, D), 0.005, np.float32)
    t[p + "mlp.up_proj.weight"] = np.full((F, D), 0.006, np.float32)
    t[p + "mlp.down_proj.weight"] = np.full((D, F), 0.007, np.float32)
save_file(t, os.path.join(out, "model.safetensors"))
