"""Parity cases for the text side and the schedulers (format: docs/parity.md):

- `tokenizer`: transformers 4.40.2 `CLIPTokenizer` folders built from OpenAI's CLIP BPE vocabulary
  (`$BACKDROP_ASSETS/clip/bpe_simple_vocab_16e6.txt.gz`, `make assets`). Committed cases keep the
  first MERGES merges only (the full vocabulary is 2 MB); ids of a truncated BPE are still exactly
  what transformers gives for that folder. One SD2-style folder (pad token "!", old-style
  tokenizer_config.json as stabilityai/stable-diffusion-2-base has it) and one SD1-style (pads with
  <|endoftext|>, as openai/clip-vit-large-patch14). `--full` writes the full vocabulary.
- `text_encoder`: transformers `CLIPTextModel` with random weights, gelu (SD2) and quick_gelu (SD1);
  the quick_gelu one is saved as `pytorch_model.bin` with the `position_ids` buffer that older
  transformers versions saved (as in SD2's real text_encoder), to pin the .bin path and the skip.
  Expected: `last_hidden_state` and the penultimate `hidden_states.<L-1>` (transformers' output_hidden_states).
- `scheduler_ddim`: diffusers 0.27.2 `DDIMScheduler` loops over given model outputs (leading with
  steps_offset as SD2, trailing + v-prediction + clipping, linspace + η > 0 with a seeded generator).
- `scheduler_dpm`: `DPMSolverMultistepScheduler` (DPM-Solver++ 2M; midpoint and Heun; 10 and 20 steps).
- `scheduler_ddpm`: `DDPMScheduler.add_noise` / `get_velocity` and `alphas_cumprod` (training targets).

`make_tokenizer_reference(path)` writes the ids of the full real vocabulary for a prompt corpus
(Tests/Fixtures/tokenizer/clip_vocab_ids.json), which the Swift tests compare against the gz.
"""
import gzip
import json
import os
import pathlib
import shutil

import torch
from safetensors.torch import save_file

TEXT_ENCODER_TOLERANCE = 1e-4   # max-abs, float32 (issue 3)
SCHEDULER_TOLERANCE = 1e-5      # final sample, float32 (issue 3)
MERGES = 1000                   # merges kept in the committed tokenizer folders

# Punctuation, numbers, unicode (accents composed and decomposed, CJK, kana, Hangul, Cyrillic, Greek
# with final sigma, RTL), emoji (ZWJ sequences, skin tones, variation selectors, one newer than
# Unicode 14 which Python 3.11 drops as unassigned), whitespace runs and odd whitespace, control
# characters, literal special tokens, contractions, "!" (SD2's pad token), very long prompts, and
# the empty prompt.
PROMPTS = [
    "",
    "a cozy living room",
    "A photograph of an astronaut riding a horse, 4k, highly detailed!!!",
    "  leading and trailing   whitespace runs\t\ttabs\nnewlines\r\n ",
    "Numbers: 1234567890 3.14159 1,000,000 -42 1e-5 ½ ² ٣ 2024-01-31",
    "Punctuation!?.,;:'\"()[]{}<>@#$%^&*_+=|\\/~`-—–… «quotes» „low“",
    "don't it's we're they've I'm you'll he'd 'sup O'NEIL ''s DON'T",
    "Café naïve résumé Ångström façade crème brûlée",
    "Cafe\u0301 nai\u0308ve A\u030angstro\u0308m",
    "東京の夜景、美しい街並み",
    "北京烤鸭 and 上海 with 𠀀 extension B",
    "Москва — красивый город, ЁЖИК",
    "ΟΔΟΣ Σ ΑΣ. σοφία ΣΑΣ'Σ",
    "İstanbul STRASSE straße ﬁ ligature ǅ titlecase",
    "emoji 😀🎉🏳️‍🌈👨‍👩‍👧‍👦 👍🏽 ❤️ ✨",
    "한국어 텍스트 테스트",
    "עברית ו العربية مرحبا",
    "zero\u200bwidth\u200djoiner\ufeffbom\u00adsoft",
    "control\x00chars\x07here\x1b[0m and \ufffd replacement \x7f",
    "line\u2028separator\u2029paragraph\u00a0nbsp\u3000ideographic\u2003em",
    "<|startoftext|> literal specials <|endoftext|> and <|ENDOFTEXT|>",
    "UPPER lower MiXeD CaSe",
    "hello!world!! (exclamation) !",
    "tab\tseparated\x0bvertical\x0cform\x1cfile\x85nel",
    "a " * 100,
    ("A breathtaking 360 degree panorama of a modern Scandinavian living room with large windows, "
     "warm afternoon light, oak floors, a grey sofa, indoor plants, minimalist decor, ultra realistic, "
     "8k, octane render, trending on artstation, by Greg Rutkowski and Alphonse Mucha, cinematic"),
    "unicode 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math ℝ² ∑∫ √2 ≈ 1.414 ①②",
    "fullwidth ＡＢＣ１２３！ halfwidth ｶﾀｶﾅ",
    "new emoji 🫨 🪿 (Unicode 15) and private \ue000 use",
    "ſtop 'ſ Kelvin \u212a sign",
    "   ",
    "x",
    "!!!",
]


def clip_vocabulary_gz():
    root = os.environ.get("BACKDROP_ASSETS") or os.path.expanduser("~/.cache/backdrop/assets")
    path = pathlib.Path(root) / "clip" / "bpe_simple_vocab_16e6.txt.gz"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `make assets`")
    return path


def read_merges(limit=None):
    lines = gzip.open(clip_vocabulary_gz()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    return merges[:limit] if limit else merges


def write_tokenizer_folder(folder, merges, style):
    """vocab.json/merges.txt as OpenAI's vocabulary converts to transformers', plus the config files
    of the SD2 ("!" padding) or SD1 (eos padding) tokenizer."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")

    def added(content):
        return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
                "rstrip": False, "single_word": False}
    pad = "!" if style == "sd2" else "<|endoftext|>"
    config = {"add_prefix_space": False, "bos_token": added("<|startoftext|>"), "do_lower_case": True,
              "eos_token": added("<|endoftext|>"), "errors": "replace", "model_max_length": 77,
              "name_or_path": "openai/clip-vit-large-patch14", "pad_token": pad if style == "sd2" else added(pad),
              "tokenizer_class": "CLIPTokenizer", "unk_token": added("<|endoftext|>")}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {k: {x: y for x, y in v.items() if x != "__type"} if isinstance(v, dict) else v
               for k, v in config.items() if k in ("bos_token", "eos_token", "pad_token", "unk_token")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))


def tokenizer_ids(folder, prompts):
    from transformers import CLIPTokenizer
    tokenizer = CLIPTokenizer.from_pretrained(str(folder))
    assert tokenizer.fix_text is None, "ftfy is installed: the reference path would differ"
    return tokenizer(prompts, padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def write_case(case_dir, component, inputs, expected, atol, rtol, args=None, model=None, model_path="model"):
    """A case folder; `model(folder)` writes the model files into case_dir/model, or `model_path`
    names another case's model (relative to this case folder)."""
    case_dir = pathlib.Path(case_dir)
    if case_dir.exists():
        shutil.rmtree(case_dir)
    case_dir.mkdir(parents=True)
    if model is not None:
        (case_dir / "model").mkdir()
        model(case_dir / "model")
    if inputs:
        save_file({k: v.contiguous() for k, v in inputs.items()}, case_dir / "inputs.safetensors")
    save_file({k: v.contiguous() for k, v in expected.items()}, case_dir / "expected.safetensors")
    (case_dir / "case.json").write_text(json.dumps(
        {"component": component, "model": model_path, "atol": atol, "rtol": rtol, "args": args or {}},
        indent=2, ensure_ascii=False) + "\n")


# MARK: tokenizer

def tokenizer_cases(out_dir, full):
    merges = read_merges(None if full else MERGES)
    suffix = "_full" if full else ""
    for style in ("sd2", "sd1"):
        case_dir = pathlib.Path(out_dir) / f"tokenizer_{style}{suffix}"
        staging = pathlib.Path(out_dir) / f".staging_tokenizer_{style}"
        if staging.exists():
            shutil.rmtree(staging)
        write_tokenizer_folder(staging, merges, style)
        ids = tokenizer_ids(staging, PROMPTS)
        write_case(case_dir, "tokenizer", {}, {"input_ids": ids.to(torch.int64)}, atol=0, rtol=0,
                   args={"prompts": PROMPTS},
                   model=lambda folder: [shutil.copy(p, folder / p.name) for p in staging.iterdir()])
        shutil.rmtree(staging)


def make_tokenizer_reference(path):
    """Ids of the full real vocabulary, SD2-style ("!") and SD1-style (eos) padding, and the
    unpadded token ids, for the Swift tests that read the gz directly."""
    path = pathlib.Path(path)
    staging = path.parent / ".staging_tokenizer_reference"
    result = {"source": "transformers 4.40.2 CLIPTokenizer (no ftfy) on bpe_simple_vocab_16e6.txt.gz from "
                        "clip-anytorch==2.6.0; written by tools/make_parity_cases.py", "prompts": PROMPTS}
    merges = read_merges()
    for style in ("sd2", "sd1"):
        if staging.exists():
            shutil.rmtree(staging)
        write_tokenizer_folder(staging, merges, style)
        result[f"{style}_input_ids"] = tokenizer_ids(staging, PROMPTS).tolist()
        if style == "sd1":
            from transformers import CLIPTokenizer
            tokenizer = CLIPTokenizer.from_pretrained(str(staging))
            result["tokens"] = [tokenizer.tokenize(p) for p in PROMPTS]
        shutil.rmtree(staging)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, ensure_ascii=False, indent=None) + "\n")


# MARK: text encoder

TEXT_ENCODERS = {
    # SD2's text tower in miniature: exact GELU, 4 heads.
    "text_encoder_gelu": dict(config=dict(vocab_size=128, hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                          num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu"),
                              batch=2, safetensors=True),
    # SD1's: quick_gelu, an odd head count, another eps; saved the old way (.bin with position_ids).
    "text_encoder_quick_gelu_bin": dict(config=dict(vocab_size=128, hidden_size=24, intermediate_size=40,
                                                    num_hidden_layers=3, num_attention_heads=3,
                                                    max_position_embeddings=77, hidden_act="quick_gelu",
                                                    layer_norm_eps=1e-6),
                                        batch=1, safetensors=False),
}

SD2_TEXT_ENCODER = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                        num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)


def text_encoder_case(out_dir, name, config, batch, safetensors, seed):
    from transformers import CLIPTextConfig, CLIPTextModel
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = CLIPTextModel(CLIPTextConfig(**config)).eval()
    with torch.no_grad():
        for parameter in model.parameters():  # norms start at 1/0 and biases at 0: make each one count
            if parameter.ndim == 1:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    vocab = config["vocab_size"]
    ids = torch.randint(0, vocab - 2, (batch, 77), generator=generator)
    ids[:, 0] = vocab - 2                      # a bos-like id
    for row in range(batch):                   # an eos-like id and padding after it
        end = 5 + 17 * row
        ids[row, end] = vocab - 1
        ids[row, end + 1:] = 0
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True)
    expected = {"last_hidden_state": out.last_hidden_state}
    # The penultimate layer's output is what "clip skip" users take.
    penultimate = len(out.hidden_states) - 2
    expected[f"hidden_states.{penultimate}"] = out.hidden_states[penultimate]

    def save(folder):
        model.save_pretrained(folder, safe_serialization=safetensors)
        if not safetensors:
            # transformers < 4.31 saved the position_ids buffer: real SD2 checkpoints have it.
            state = torch.load(folder / "pytorch_model.bin")
            state["text_model.embeddings.position_ids"] = torch.arange(77).expand((1, -1)).clone()
            torch.save(state, folder / "pytorch_model.bin")
    write_case(pathlib.Path(out_dir) / name, "text_encoder", {"input_ids": ids}, expected,
               atol=TEXT_ENCODER_TOLERANCE, rtol=0, model=save)


# MARK: schedulers

SD2_BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
SD2_SCHEDULER = dict(SD2_BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1)

DDIM_CASES = {
    # SD 2-base's schedule: leading spacing with steps_offset 1, ᾱ_prev of the last step = ᾱ_0.
    "scheduler_ddim_leading": dict(config=dict(SD2_SCHEDULER, timestep_spacing="leading"), steps=10, eta=0.0),
    # Trailing spacing with an uneven step count, v-prediction (SD 2.1), clipping, ᾱ_final = 1.
    "scheduler_ddim_trailing_v": dict(config=dict(beta_schedule="linear", timestep_spacing="trailing",
                                                  prediction_type="v_prediction", clip_sample=True,
                                                  clip_sample_range=1.5, set_alpha_to_one=True),
                                      steps=7, eta=0.0),
    # linspace, cosine betas, x₀-prediction and η > 0 with a seeded generator.
    "scheduler_ddim_linspace_eta": dict(config=dict(beta_schedule="squaredcos_cap_v2", timestep_spacing="linspace",
                                                    prediction_type="sample", clip_sample=False),
                                        steps=12, eta=0.5, seed=7),
}

DPM_CASES = {
    # DPM-Solver++ 2M as SD pipelines use it: SD2 betas, linspace, lower-order final steps (< 15 steps).
    "scheduler_dpm_sd2": dict(config=dict(SD2_BETAS), steps=10),
    # 20 steps (no lower-order final but the last), Heun update, v-prediction, leading + offset, σ_min end.
    "scheduler_dpm_heun_v": dict(config=dict(SD2_BETAS, steps_offset=1, solver_type="heun", prediction_type="v_prediction",
                                             timestep_spacing="leading", final_sigmas_type="sigma_min"), steps=20),
    # First order (DPM-Solver-1 = DDIM), trailing spacing, linear betas.
    "scheduler_dpm_order1_trailing": dict(config=dict(solver_order=1, timestep_spacing="trailing"), steps=6),
}


def scheduler_loop(scheduler, steps, shape, generator, eta=None, step_seed=None):
    sample = torch.randn(shape, generator=generator)
    scheduler.set_timesteps(steps)
    outputs = torch.randn((len(scheduler.timesteps),) + shape, generator=generator)
    x = sample.clone()
    step_generator = torch.Generator().manual_seed(step_seed) if step_seed is not None else None
    for i, t in enumerate(scheduler.timesteps):
        kwargs = {"eta": eta, "generator": step_generator} if eta is not None else {}
        x = scheduler.step(outputs[i], t, x, **kwargs).prev_sample
    return sample, outputs, x


def scheduler_cases(out_dir, full):
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
    shape = (2, 4, 8, 8) if full else (1, 4, 6, 6)
    for index, (name, case) in enumerate(DDIM_CASES.items()):
        generator = torch.Generator().manual_seed(100 + index)
        scheduler = DDIMScheduler(**case["config"])
        steps = 50 if full else case["steps"]
        sample, outputs, final = scheduler_loop(scheduler, steps, shape, generator, eta=case["eta"],
                                                step_seed=case.get("seed"))
        args = {"num_inference_steps": steps, "eta": case["eta"]}
        if "seed" in case:
            args["seed"] = case["seed"]
        write_case(pathlib.Path(out_dir) / (name + ("_full" if full else "")), "scheduler_ddim",
                   {"sample": sample, "model_outputs": outputs},
                   {"timesteps": scheduler.timesteps.to(torch.int64), "final_sample": final},
                   atol=SCHEDULER_TOLERANCE, rtol=0, args=args, model=scheduler.save_config)
        if full:
            break
    if full:
        return
    for index, (name, case) in enumerate(DPM_CASES.items()):
        generator = torch.Generator().manual_seed(200 + index)
        scheduler = DPMSolverMultistepScheduler(**case["config"])
        sample, outputs, final = scheduler_loop(scheduler, case["steps"], shape, generator)
        write_case(pathlib.Path(out_dir) / name, "scheduler_dpm",
                   {"sample": sample, "model_outputs": outputs},
                   {"timesteps": scheduler.timesteps.to(torch.int64), "final_sample": final},
                   atol=SCHEDULER_TOLERANCE, rtol=0, args={"num_inference_steps": case["steps"]},
                   model=scheduler.save_config)
    for index, (name, config) in enumerate({"scheduler_ddpm_sd2": dict(SD2_BETAS),
                                            "scheduler_ddpm_cosine": dict(beta_schedule="squaredcos_cap_v2")}.items()):
        generator = torch.Generator().manual_seed(300 + index)
        scheduler = DDPMScheduler(**config)
        original = torch.randn((4, 4, 5, 5), generator=generator)
        noise = torch.randn((4, 4, 5, 5), generator=generator)
        timesteps = torch.tensor([0, 1, 500, 999], dtype=torch.int64)
        write_case(pathlib.Path(out_dir) / name, "scheduler_ddpm",
                   {"original_samples": original, "noise": noise, "timesteps": timesteps},
                   {"noisy_samples": scheduler.add_noise(original, noise, timesteps),
                    "velocity": scheduler.get_velocity(original, noise, timesteps),
                    "alphas_cumprod": scheduler.alphas_cumprod},
                   atol=SCHEDULER_TOLERANCE, rtol=0, model=scheduler.save_config)


def make_cases(out_dir: pathlib.Path, full: bool = False):
    """Writes the text-side and scheduler cases under `out_dir` (one folder per case)."""
    out_dir = pathlib.Path(out_dir)
    torch.set_num_threads(1)
    tokenizer_cases(out_dir, full)
    if full:
        text_encoder_case(out_dir, "text_encoder_sd2_full", SD2_TEXT_ENCODER, batch=1, safetensors=True, seed=40)
    else:
        for index, (name, case) in enumerate(TEXT_ENCODERS.items()):
            text_encoder_case(out_dir, name, seed=40 + index, **case)
    scheduler_cases(out_dir, full)
