"""The generation pipeline and `straightline generate`, with a tiny untrained model and the real text encoder."""

import json

import pytest
import torch
from conftest import tiny_model_folder

from straightline import sampling
from straightline.cli import main
from straightline.dit import DiT
from straightline.errors import InvalidRequest
from straightline.model import ModelInfo
from straightline.pipeline import Pipeline, _times, dit_forwards, generate, validate_request
from straightline.text import TextEmbedding
from straightline.video_io import probe, read_image, read_video


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model folder. The DiT is untrained but nudged off its zero init (adaLN-zero and the zero output
    layer would make the velocity exactly 0, so text, guidance and batching could not change anything)."""
    return tiny_model_folder(tmp_path_factory.mktemp("model"),
                             {"max_tokens": 1024})


def request(pipe, prompt="a red ball bouncing", **fields):
    fields = {"size": "64x32", "frames": 5, "steps": 3, "seed": 0, **fields}
    return pipe.validate(prompt, **fields)


# --- validation ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, field, words", [
    ({"size": "64x40"}, "size", "the nearest valid size is 64x48"),
    ({"size": "70x40"}, "size", "must be multiples of 16"),
    ({"size": "64x48", "aspect": "16:9"}, "size", "not both"),
    ({"size": "4096x16"}, "size", "from 16 to 2048"),
    ({"resolution": 100}, "resolution", "multiple of 16"),
    ({"size": "1024x1024", "seconds": 2}, "size", "reduce the size or the duration"),
    ({"fps": 0}, "fps", "from 1 to 60"),
    ({"fps": 61}, "fps", "from 1 to 60"),
    ({"steps": 0}, "steps", "from 1 to 200"),
    ({"steps": 2.5}, "steps", "whole number"),
    ({"cfg": 21}, "cfg", "from 0 to 20"),
    ({"cfg": "lots"}, "cfg", "from 0 to 20"),
    ({"sampler": "ddim"}, "sampler", "euler or heun"),
    ({"cfg_interval": "0.8,0.2"}, "cfg_interval", "0 <= lo <= hi <= 1"),
    ({"cfg_interval": "0.1"}, "cfg_interval", '"lo,hi"'),
    ({"cfg_interval": [0, 1.5]}, "cfg_interval", "0 <= lo <= hi <= 1"),
    ({"seconds": 61}, "seconds", "to 60 seconds"),
    ({"seconds": 2, "frames": 25}, "frames", "not both"),
    ({"seed": -1}, "seed", "whole number"),
])
def test_bad_fields_are_named_with_what_is_allowed(fields, field, words):
    with pytest.raises(InvalidRequest) as err:
        validate_request("a red ball", **fields)
    assert err.value.field == field and words in err.value.allowed


@pytest.mark.parametrize("prompt", ["", "   ", "x" * 2001, None])
def test_prompt_must_be_non_empty_text(prompt):
    with pytest.raises(InvalidRequest) as err:
        validate_request(prompt)
    assert err.value.field == "prompt"


def test_token_budget_message_gives_the_numbers():
    with pytest.raises(InvalidRequest) as err:
        validate_request("a ball", size="448x256", seconds=4, fps=12, info=ModelInfo(defaults={"max_tokens": 2000}))
    # 49 frames -> 13 latent frames × 16 × 28 = 5824 tokens; 2000 // 448 = 4 latent frames = 13 frames
    assert "2000" in err.value.allowed and "5824" in err.value.allowed and "13 frames" in err.value.allowed


def test_defaults_come_from_the_model_and_frames_map_to_1_plus_4k():
    r = validate_request("a ball", info=ModelInfo(defaults={"fps": 8, "steps": 7}))
    assert (r.fps, r.steps, r.frames, r.requested_frames) == (8, 7, 17, None)   # 2 s at 8 fps = 17 = 1 + 4·4
    r = validate_request("a ball", seconds=1, fps=10)        # 11 frames asked
    assert (r.frames, r.requested_frames, r.adjusted) == (13, 11, True)
    r = validate_request("a ball", frames=6)
    assert (r.frames, r.requested_frames) == (5, 6)
    r = validate_request("a ball", seconds=0, size="64x48")
    assert (r.frames, r.seconds, r.latent_tokens) == (1, 0.0, 12)
    r = validate_request("a ball", size="448x256", seconds=4, fps=12, steps="20", cfg="4.5")  # form strings
    assert (r.frames, r.latent_tokens, r.steps, r.cfg) == (49, 13 * 16 * 28, 20, 4.5)


def test_a_preset_sets_defaults_under_the_fields_given():
    assert validate_request("a ball", preset="fast").steps == 8
    assert validate_request("a ball", preset="fast", steps=3).steps == 3                  # the field wins
    own = ModelInfo(defaults={"steps": 30}, presets={"fast": {"steps": 4, "cfg": 3.0}, "draft": {"steps": 2}})
    assert validate_request("a ball", info=own).steps == 30
    assert (validate_request("a ball", info=own, preset="fast").steps, validate_request(
        "a ball", info=own, preset="fast").cfg) == (4, 3.0)                            # the model's own preset
    assert validate_request("a ball", info=own, preset="draft").steps == 2
    with pytest.raises(InvalidRequest) as err:
        validate_request("a ball", info=own, preset="turbo")
    assert err.value.field == "preset" and "draft, fast" in str(err.value)


def test_a_missing_seed_is_drawn_and_recorded():
    seeds = {validate_request("a ball").seed for _ in range(5)}
    assert len(seeds) > 1 and all(isinstance(s, int) for s in seeds)


@pytest.mark.parametrize("aspect, size", [("16:9", (64, 32)), ("9:16", (32, 64)), ("1:1", (32, 32))])
def test_aspect_ratios_give_the_right_frame_shape(pipe, aspect, size):
    r = pipe.validate("a ball", aspect=aspect, resolution=32, frames=5, steps=2, seed=0)
    [result] = pipe.generate(r)
    assert result.frames.dtype == torch.uint8 and result.frames.shape == (5, size[1], size[0], 3)


# --- generation ----------------------------------------------------------------------------------------

def test_same_seed_same_video_other_seed_or_prompt_other_video(pipe):
    a = pipe.generate(request(pipe, seed=1))[0].frames
    b = pipe.generate(request(pipe, seed=1))[0].frames
    c = pipe.generate(request(pipe, seed=2))[0].frames
    d = pipe.generate(request(pipe, "a blue star", seed=1))[0].frames
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)


def test_a_batch_equals_each_request_alone(pipe):
    # different prompt lengths: the batch pads text tokens, which the attention mask must hide
    first = request(pipe, "a red ball", seed=3, negative="blurry")
    second = request(pipe, "a small green square slides left over a sunset sky", seed=4)
    batched = pipe.generate([first, second])
    alone = [pipe.generate(first)[0], pipe.generate(second)[0]]
    for b, a in zip(batched, alone):
        assert (b.frames.int() - a.frames.int()).abs().max() <= 1   # uint8 of fp32 results that agree to ~1e-6
    assert batched[0].request is first and batched[1].request is second


def test_guidance_is_one_batched_forward_per_step_and_none_without_it(pipe):
    batches = []
    hook = pipe.dit.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    try:
        pipe.generate([request(pipe, seed=0, cfg=1), request(pipe, "a cat", seed=1, cfg=1)])
        unguided, batches[:] = list(batches), []
        pipe.generate([request(pipe, seed=0, cfg=4), request(pipe, "a cat", seed=1, cfg=4)])
        guided = list(batches)
    finally:
        hook.remove()
    assert unguided == [2, 2, 2]          # 3 steps, both requests in one batch
    assert guided == [4, 4, 4]            # conditional + unconditional halves in the same forward


def test_guidance_interval_guides_only_the_steps_inside_it(pipe):
    """Outside the interval a step is one conditional forward of half the batch; the cost model counts the same."""
    r = request(pipe, seed=0, cfg=4, steps=6, cfg_interval="0.1,0.6")
    times = _times(r, r.frames).tolist()[:-1]
    expected = [2 if 0.1 <= t <= 0.6 else 1 for t in times]
    assert 1 in expected and 2 in expected
    batches = []
    hook = pipe.dit.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    try:
        limited = pipe.generate(r)[0].frames
        everywhere = pipe.generate(request(pipe, seed=0, cfg=4, steps=6, cfg_interval=(0, 1)))[0].frames
    finally:
        hook.remove()
    assert batches[:6] == expected and batches[6:] == [2] * 6
    assert dit_forwards(r) == [(r.latent_tokens, sum(expected))]
    assert not torch.equal(limited, everywhere)


def test_shapes_are_grouped_and_results_keep_the_request_order(pipe):
    requests = [request(pipe, seed=0), request(pipe, seed=1, size="32x32"), request(pipe, seed=2)]
    progress = []
    results = pipe.generate(requests, on_step=lambda done, total: progress.append((done, total)))
    assert [r.frames.shape[1:3] for r in results] == [(32, 64), (32, 32), (32, 64)]
    assert progress == [(i, 6) for i in range(7)]     # two groups of 3 steps
    assert all(set(r.timings) == {"text_s", "sampling_s", "decode_s", "total_s"} for r in results)


def test_heun_runs_two_forwards_per_step_but_the_last(pipe):
    calls = []
    hook = pipe.dit.register_forward_hook(lambda *_: calls.append(1))
    try:
        [result] = pipe.generate(request(pipe, sampler="heun", steps=3, cfg=1))
    finally:
        hook.remove()
    assert len(calls) == 5 and result.frames.shape == (5, 32, 64, 3)


def test_raising_from_on_step_cancels(pipe):
    class Cancelled(Exception):
        pass

    calls = []

    def on_step(done, total):
        if done == 2:
            raise Cancelled

    hook = pipe.dit.register_forward_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(Cancelled):
            pipe.generate(request(pipe, steps=10), on_step=on_step)
    finally:
        hook.remove()
    assert len(calls) == 2


def test_components_passed_in_generate_like_the_loaded_model(pipe):
    # training hands over its own (EMA) models and encoder to write previews
    passed = Pipeline(dit=pipe.dit, vae=pipe.vae, text=pipe.text, info=pipe.info)
    r = request(pipe, seed=5)
    assert torch.equal(passed.generate(r)[0].frames, pipe.generate(r)[0].frames)


def test_one_call_generate_and_the_summary(model_dir):
    result = generate("a red ball", model=model_dir, size="64x32", seconds=0.5, fps=12, steps=2, seed=0)
    assert result.frames.shape == (9, 32, 64, 3) and result.requested_frames == 7
    assert result.summary().startswith("64x32, 9 frames at 12 fps (0.7 s; 7 frames asked, frame counts are 1 + 4k)")
    assert "seed 0" in result.summary() and "sampling" in result.summary()
    image = generate("a red ball", model=model_dir, size="32x32", seconds=0, steps=2)
    assert image.frames.shape == (1, 32, 32, 3) and image.summary().startswith("32x32 image")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_same_seed_same_video(model_dir):
    pipe = Pipeline(model_dir, "cuda")
    r = request(pipe, seed=1, size="64x64", frames=9)
    a, b = pipe.generate(r)[0].frames, pipe.generate(r)[0].frames
    assert a.device.type == "cpu" and a.shape == (9, 64, 64, 3) and torch.equal(a, b)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_and_compile_make_the_same_video_as_eager(model_dir):
    eager = Pipeline(model_dir, "cuda", cuda_graphs=False)
    graphed = Pipeline(model_dir, "cuda")
    fused = Pipeline(model_dir, "cuda", compile=True)
    for shape in ({"size": "64x64", "frames": 9}, {"size": "64x32", "frames": 5}, {"size": "64x64", "frames": 9}):
        r = request(eager, seed=3, **shape)
        want = eager.generate(r)[0].frames.float()
        for pipe in (graphed, fused):
            got = pipe.generate(r)[0].frames.float()
            assert (got - want).abs().mean() < 1.0, "graphs/compile changed the video beyond bf16 noise"
    assert len(graphed._forward(graphed.dit).graphs) == 2   # one graph per shape, reused for the repeat
    graphed.generate(request(graphed, "a small blue star slides left over a sunset sky", seed=3, size="64x64",
                             frames=9))
    assert len(graphed._forward(graphed.dit).graphs) == 2   # a longer prompt is padded to the same length


def test_padded_text_keeps_every_token_and_masks_the_rest():
    text = TextEmbedding(torch.randn(2, 5, 4), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool(),
                         torch.randn(2, 4))
    padded = text.padded(32)
    assert padded.tokens.shape == (2, 32, 4) and torch.equal(padded.tokens[:, :5], text.tokens)
    assert padded.mask.sum(1).tolist() == [3, 5] and torch.equal(padded.pooled, text.pooled)
    assert text.padded(5).tokens.shape == (2, 5, 4)


def test_cuda_graphed_is_a_plain_call_on_a_cpu():
    calls = []
    graphed = sampling.CUDAGraphed(lambda x, y: calls.append(1) or x + (0 if y is None else y))
    assert torch.equal(graphed(torch.ones(2), None), torch.ones(2)) and calls == [1] and not graphed.graphs


# --- command line --------------------------------------------------------------------------------------

def test_cli_writes_a_readable_mp4_and_says_what_it_made(model_dir, tmp_path, capsys):
    out = tmp_path / "ball.mp4"
    code = main(["generate", "a red ball", "--model", str(model_dir), "--size", "64x32", "--frames", "6",
                 "--steps", "2", "--seed", "1", "--device", "cpu", "-o", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "5 frames" in printed and "6 frames asked" in printed
    info = probe(out)
    assert (info["width"], info["height"], info["num_frames"]) == (64, 32, 5)
    assert read_video(out).frames.shape == (5, 32, 64, 3)


def test_cli_preset_fast_samples_fewer_steps(model_dir, tmp_path, monkeypatch):
    steps = []
    real = Pipeline.generate
    monkeypatch.setattr(Pipeline, "generate", lambda self, requests, on_step=None:
                        steps.extend(r.steps for r in requests) or real(self, requests, on_step))
    args = ["generate", "a red ball", "--model", str(model_dir), "--size", "32x32", "--frames", "1", "--seed", "1",
            "--device", "cpu", "--no-intent", "-o", str(tmp_path / "a.png")]
    assert main(args + ["--preset", "fast"]) == 0 and main(args + ["--preset", "fast", "--steps", "2"]) == 0
    assert steps == [8, 2]


def test_cli_several_prompts_and_an_image(model_dir, tmp_path, capsys):
    args = ["--model", str(model_dir), "--size", "32x32", "--steps", "2", "--device", "cpu"]
    assert main(["generate", "a red ball", "a blue star", "--frames", "5", "-o", str(tmp_path / "clip-{i}.mp4"),
                 *args]) == 0
    assert [probe(tmp_path / f"clip-{i}.mp4")["num_frames"] for i in (1, 2)] == [5, 5]
    assert main(["generate", "a green square", "a green square", "--seconds", "0", "-o", str(tmp_path / "stills"),
                 *args]) == 0                                   # a folder; duplicate slugs are numbered
    assert read_image(tmp_path / "stills" / "a-green-square-2.png").shape == (32, 32, 3)
    assert main(["generate", "a green square", "--seconds", "0", "-o", str(tmp_path / "still.mp4"), *args]) == 0
    assert probe(tmp_path / "still.mp4")["num_frames"] == 1
    assert "a-green-square-1.png" in capsys.readouterr().out


@pytest.mark.parametrize("args, starts", [
    (["--size", "64x40"], "straightline: error: size='64x40' is not allowed: width and height must be multiples of 16"),
    (["--size", "64x48", "--aspect", "1:1"], "straightline: error: size="),
    (["a second prompt", "-o", "x.mp4"], "straightline: error: out="),
    (["--cfg-interval", "0.9,0.1"], "straightline: error: cfg_interval='0.9,0.1' is not allowed: two diffusion times"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(model_dir, capsys, args, starts):
    assert main(["generate", "a red ball", *args, "--model", str(model_dir), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(starts) and err.count("\n") == 1 and "Traceback" not in err


def test_cli_missing_model_is_one_line(tmp_path, capsys):
    assert main(["generate", "a red ball", "--model", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("straightline: error: model=") and "model.json" in err and err.count("\n") == 1


def test_cli_reads_the_request_with_intent_and_flags_win(model_dir, tmp_path, capsys):
    """By default generate rewrites the request into the model's caption style and takes parameters from its
    words (here Chinese: vertical, 1 second); explicit flags override the words; --no-intent keeps the prompt."""
    args = ["--model", str(model_dir), "--steps", "1", "--seed", "3", "--fps", "8", "--resolution", "32"]
    assert main(["generate", "一个红色的球在弹跳，竖屏，1秒", "-o", str(tmp_path / "a.mp4"), *args]) == 0
    printed = capsys.readouterr().out
    assert "prompt:" in printed and "red ball" in printed                 # the expanded prompt is shown
    info = probe(tmp_path / "a.mp4")
    assert (info["width"], info["height"], info["num_frames"]) == (32, 64, 9)   # 9:16 from 竖屏, 1 s at 8 fps
    assert main(["generate", "a red ball bouncing, vertical", "--aspect", "16:9", "-o", str(tmp_path / "b.mp4"),
                 "--seconds", "0.5", *args]) == 0
    assert (probe(tmp_path / "b.mp4")["width"], probe(tmp_path / "b.mp4")["height"]) == (64, 32)   # the flag wins
    capsys.readouterr()
    assert main(["generate", "a red ball bouncing, vertical", "--no-intent", "-o", str(tmp_path / "c.mp4"),
                 "--seconds", "0.5", *args]) == 0
    assert "prompt:" not in capsys.readouterr().out
    assert probe(tmp_path / "c.mp4")["width"] == 64                       # the model's default aspect (16:9)


def test_the_words_negative_is_kept_unless_the_flag_sets_one():
    """"no stripes" in the request becomes the negative prompt; --negative replaces it; the flag's default ("")
    does not."""
    from straightline.cli import _understood, build_parser
    for flag, expected in (([], "stripes"), (["--negative", "dots"], "dots")):
        args = build_parser().parse_args(["generate", "a red ball bouncing, no stripes", "--seed", "3", *flag])
        _, fields = _understood(args, args.prompt[0], {})
        assert fields["negative"] == expected


def test_a_preset_can_sample_with_a_student_dit_of_its_own(tmp_path):
    """The shipped `fast` preset names a distilled student (weights/dit-fast/): a preset's "dit" is the folder
    of the DiT that samples its requests, loaded once, beside the model's own."""
    teacher = tiny_model_folder(tmp_path / "teacher", {"steps": 2, "max_tokens": 1024})
    student = tiny_model_folder(tmp_path / "student", {"steps": 2, "max_tokens": 1024})
    dit = DiT.load(student / "dit")
    with torch.no_grad():                                         # a different DiT from the teacher's
        for p in dit.parameters():
            p.mul_(-1)
    dit.save(teacher / "dit-fast")
    dit.save(student / "dit")
    info = json.loads((teacher / "model.json").read_text())
    info["presets"] = {"fast": {"steps": 1, "cfg": 1.0, "dit": "dit-fast"}}
    (teacher / "model.json").write_text(json.dumps(info))

    pipe = Pipeline(teacher)
    fields = {"size": "32x32", "frames": 1, "seed": 3}
    fast = pipe.validate("a red ball", preset="fast", **fields)
    assert (fast.dit, fast.steps, fast.cfg) == ("dit-fast", 1, 1.0)
    made = pipe.generate([fast, pipe.validate("a red ball", **fields)])           # two batches, two DiTs
    alone = Pipeline(student).generate(Pipeline(student).validate("a red ball", steps=1, cfg=1.0, **fields))
    assert torch.equal(made[0].frames, alone[0].frames)                           # the student sampled it
    assert not torch.equal(made[0].frames, pipe.generate(pipe.validate("a red ball", steps=1, cfg=1.0,
                                                                       **fields))[0].frames)
    info["presets"]["broken"] = {"dit": "no-such-dit"}
    (teacher / "model.json").write_text(json.dumps(info))
    with pytest.raises(InvalidRequest) as err:
        Pipeline(teacher).validate("a red ball", preset="broken", **fields)
    assert err.value.field == "preset" and "model folder" in err.value.allowed
    with pytest.raises(InvalidRequest):
        validate_request("a ball", info=ModelInfo(presets={"up": {"dit": "../elsewhere"}}), preset="up")
