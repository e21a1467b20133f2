"""Intent: casual English / Chinese requests -> ToyWorld captions, parameters and negative prompts, with a record of
what was understood and assumed; the LLM back end against a local OpenAI-compatible server."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from straightline.errors import InvalidRequest
from straightline.intent import (
    DEFAULT_NEGATIVE,
    SIMILARITY_THRESHOLD,
    LLMConfig,
    closest_concepts,
    expand,
    to_traditional,
)
from straightline.pipeline import validate_request
from straightline.world.prompt import parse_prompt

OFF = 2.0   # a similarity threshold no word reaches: tests of parameters do not need the text encoder

# (request, the parameters it asks for or implies: exactly these and nothing else)
PARAMETER_CASES = [
    ("make it vertical and slow", {"aspect": "9:16", "speed": "slow"}),
    ("blue star zooming around, cinematic, 5s", {"seconds": 5.0, "speed": "fast", "style": ["cinematic"]}),
    ("a red ball bouncing, portrait, 10 seconds", {"aspect": "9:16", "seconds": 10.0}),
    ("landscape video of a green square sliding left, 24fps", {"aspect": "16:9", "fps": 24}),
    ("square format, a ring spinning", {"aspect": "1:1"}),
    ("a square spinning slowly", {"speed": "slow"}),
    ("4:3, two balls colliding, 3 sec", {"aspect": "4:3", "seconds": 3.0}),
    ("ten seconds of a yellow triangle falling", {"seconds": 10.0}),
    ("half a minute of stars orbiting", {"seconds": 30.0}),
    ("camera pans left over a purple cross, 8s", {"camera": "pan left", "seconds": 8.0}),
    ("zoom in on a white ring", {"camera": "zoom in"}),
    ("tilt up, pink star", {"camera": "pan up"}),
    ("static camera, black ball bouncing, 12 fps", {"camera": "static", "fps": 12}),
    ("for tiktok: an orange ball rolling right", {"aspect": "9:16"}),
    ("widescreen, slow motion, a cyan ring growing", {"aspect": "16:9", "speed": "slow"}),
    ("quick clip of a brown square shrinking fast, 2.5s", {"seconds": 2.5, "speed": "fast"}),
    ("a gray star, 1 minute", {"seconds": 60.0}),
    ("in 720p, a red ball", {"resolution": 720}),
    ("320x180, blue ball going left", {"size": "320x180"}),
    ("a seamless loop of a green star spinning", {"loop": True}),
    ("no text, a red ball bouncing", {}),
    ("a ball spinning, pull back, 6 seconds, 30fps", {"camera": "zoom out", "seconds": 6.0, "fps": 30}),
    ("一个红色的球在弹跳，竖屏，10秒", {"aspect": "9:16", "seconds": 10.0}),
    ("一个蓝色的方块向左滑动，横屏，5秒", {"aspect": "16:9", "seconds": 5.0}),
    ("两个球相撞，方形画面", {"aspect": "1:1"}),
    ("绿色的星星在旋转，慢动作", {"speed": "slow"}),
    ("镜头向左平移，一个黄色的三角形落下", {"camera": "pan left"}),
    ("镜头拉近，紫色圆环变大，3秒", {"camera": "zoom in", "seconds": 3.0}),
    ("白色十字静止不动，固定镜头，每秒24帧", {"camera": "static", "fps": 24}),
    ("粉色的球绕圈，半分钟", {"seconds": 30.0}),
    ("一个橙色的球快速滑动，十五秒，电影感", {"seconds": 15.0, "speed": "fast", "style": ["cinematic"]}),
    ("竖屏，一分钟", {"aspect": "9:16", "seconds": 60.0}),
    ("黑色方块变小，4:3，两秒", {"aspect": "4:3", "seconds": 2.0}),
    ("灰色的星星向右上方滑动，镜头拉远", {"camera": "zoom out"}),
    ("一個紅色的球在彈跳，豎屏，10秒", {"aspect": "9:16", "seconds": 10.0}),
    ("藍色方塊向左滑動，橫屏，五秒", {"aspect": "16:9", "seconds": 5.0}),
    ("兩個綠色的環在繞圈，方形畫面", {"aspect": "1:1"}),
    ("鏡頭向右平移，黃色三角形落下，慢動作", {"camera": "pan right", "speed": "slow"}),
    ("紫色的星星旋轉，鏡頭拉近，八秒", {"camera": "zoom in", "seconds": 8.0}),
    ("白色的球靜止，固定鏡頭，每秒30幀", {"camera": "static", "fps": 30}),
    ("粉紅色的十字變大，半分鐘，電影感", {"seconds": 30.0, "style": ["cinematic"]}),
]


@pytest.fixture(scope="module")
def encoder():
    from straightline.text import load_text_encoder
    return load_text_encoder()


def _scene_facts(intent) -> list[tuple]:
    return [(o.color, o.shape, o.motion, o.direction) for o in intent.scene.objects]


# --- the brief's examples -----------------------------------------------------------------------------------

def test_traditional_and_simplified_chinese_give_the_same_result():
    traditional = expand("一個紅色的球在彈跳，豎屏，10秒", similarity_threshold=OFF)
    simplified = expand("一个红色的球在弹跳，竖屏，10秒", similarity_threshold=OFF)
    for intent in (traditional, simplified):
        assert intent.language == "zh" and intent.params == {"aspect": "9:16", "seconds": 10.0}
        assert [(o.color, o.shape, o.motion) for o in intent.scene.objects] == [("red", "ball", "bounce")]
        assert intent.scene.aspect == 9 / 16 and intent.scene.duration == 10.0
    assert (traditional.prompt, traditional.negative, traditional.params) == \
        (simplified.prompt, simplified.negative, simplified.params)
    # the record shows the user's own words
    assert {"said": "豎屏", "meaning": "aspect 9:16"} in traditional.understood
    assert {"said": "彈跳", "meaning": "bouncing"} in traditional.understood


def test_short_chinese_request_without_parameters_leaves_them_to_the_model():
    intent = expand("一个红色的球在弹跳", similarity_threshold=OFF)
    assert intent.params == {}
    assert _scene_facts(intent)[0][:3] == ("red", "ball", "bounce")
    assert any("aspect not given" in a for a in intent.assumed) and any("duration" in a for a in intent.assumed)


def test_the_scene_is_framed_and_timed_for_what_the_caller_gave():
    request = "a red ball bouncing fast in the lower left"
    plain = expand(request, seed=1, similarity_threshold=OFF)
    fixed = expand(request, seed=1, similarity_threshold=OFF, given={"aspect": "9:16", "seconds": 8.0})
    assert (plain.scene.aspect, plain.scene.duration) == (pytest.approx(16 / 9), 2.0)
    assert (fixed.scene.aspect, fixed.scene.duration) == (pytest.approx(9 / 16), 8.0)
    assert fixed.prompt != plain.prompt                   # a long caption's events are those of the scene generated
    assert not any("not given" in a for a in fixed.assumed) and any("not given" in a for a in plain.assumed)
    # the caller's aspect wins over the words'; a size fixes the aspect; an image keeps the default timing
    assert expand("make it vertical", similarity_threshold=OFF, given={"aspect": "16:9"}).scene.aspect == \
        pytest.approx(16 / 9)
    image = expand(request, seed=1, similarity_threshold=OFF, given={"size": "256x448", "seconds": 0})
    assert (image.scene.aspect, image.scene.duration) == (pytest.approx(256 / 448), 2.0)
    assert not any("not given" in a for a in image.assumed)


@pytest.mark.parametrize("given, aspect, seconds", [
    ({"size": "448x256", "aspect": "9:16", "seconds": "4"}, 448 / 256, 4.0),   # a size wins over an aspect
    ({"aspect": "9:16", "frames": 25, "fps": 12}, 9 / 16, 2.0),                 # frames at the caller's fps
    ({"frames": 25}, 16 / 9, 1.0),                                              # ... or the default fps
    ({"aspect": "3:0", "seconds": "soon"}, 16 / 9, 2.0),          # bad values: left to validate_request
    ({"seconds": -1, "size": ""}, 16 / 9, 2.0),
])
def test_the_scene_reads_flags_and_api_fields_and_leaves_bad_ones_to_validation(given, aspect, seconds):
    scene = expand("a red ball", seed=1, similarity_threshold=OFF, default_fps=24, given=given).scene
    assert (scene.aspect, scene.duration) == (pytest.approx(aspect), pytest.approx(seconds))


def test_fields_the_caller_gave_win_over_the_words():
    request = "一個紅色的球在彈跳，豎屏，10秒, no stripes"
    words = expand(request, similarity_threshold=OFF).request_fields()
    assert words["aspect"] == "9:16" and words["seconds"] == 10.0 and "stripes" in words["negative"]
    given = expand(request, similarity_threshold=OFF, given={"size": "256x256", "frames": 13, "negative": "x"})
    assert given.request_fields() == {"prompt": given.prompt}    # a size replaces the aspect, frames the seconds
    assert given.scene.aspect == pytest.approx(1.0)


def test_make_it_vertical_and_slow():
    intent = expand("make it vertical and slow", similarity_threshold=OFF)
    assert intent.params == {"aspect": "9:16", "speed": "slow"} and intent.not_understood == []
    (o,) = intent.scene.objects
    assert o.motion in ("still", "fall") or o.speed == "slow"
    assert intent.level == "long"                     # medium captions do not state speed
    assert any("no object" in a for a in intent.assumed)


def test_zooming_around_is_fast_motion_not_a_camera_zoom():
    intent = expand("blue star zooming around, cinematic, 5s", similarity_threshold=OFF)
    assert "camera" not in intent.params and intent.scene.camera == "static"
    (o,) = intent.scene.objects
    assert (o.color, o.shape, o.motion, o.speed) == ("blue", "star", "orbit", "fast")
    assert intent.params["style"] == ["cinematic"] and "cinematic" not in intent.prompt
    assert any("style" in n for n in intent.notes)


# --- parameters -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("request_text, params", PARAMETER_CASES)
def test_parameters(request_text, params):
    assert expand(request_text, similarity_threshold=OFF).params == params


def test_every_simplified_case_reads_the_same_in_traditional_characters():
    for request_text, params in PARAMETER_CASES[22:34]:
        traditional = to_traditional(request_text)
        assert traditional != request_text
        a, b = expand(request_text, similarity_threshold=OFF), expand(traditional, similarity_threshold=OFF)
        assert (a.params, a.prompt) == (b.params, b.prompt), (request_text, traditional)


def test_square_is_a_shape_inside_a_sentence_and_a_format_on_its_own():
    assert "aspect" not in expand("a square spinning", similarity_threshold=OFF).params
    assert expand("a ball bouncing, square", similarity_threshold=OFF).params == {"aspect": "1:1"}
    assert "aspect" not in expand("一个正方形在旋转", similarity_threshold=OFF).params
    assert expand("一个球在弹跳，方形", similarity_threshold=OFF).params == {"aspect": "1:1"}


def test_event_times_are_not_durations():
    caption = "A red ball bounces to the left. After about 2 seconds the red ball bounces off a wall."
    assert "seconds" not in expand(caption, similarity_threshold=OFF).params


# (request, parameters, objects asked for): numbers that belong to a duration, aspect, fps, resolution or seed are
# not object counts; a number before a shape is, in digits, words or Chinese
NUMBER_CASES = [
    ("a red ball bouncing for 10 seconds", {"seconds": 10.0}, 1),
    ("make a 16:9 video of 2 balls at 24 fps", {"aspect": "16:9", "fps": 24}, 2),
    ("a red ball at 512 resolution", {"resolution": 512}, 1),
    ("a red ball, resolution 512", {"resolution": 512}, 1),
    ("a red ball, 512 pixels", {"resolution": 512}, 1),
    ("2 balls, 720p, 12 fps", {"resolution": 720, "fps": 12}, 2),
    ("a ball, framerate 24", {"fps": 24}, 1),
    ("a ball, 16 by 9", {"aspect": "16:9"}, 1),
    ("a ball 1080x1920 pixels", {"size": "1080x1920"}, 1),
    ("a red ball bouncing, 10 seconds long, 24fps, 16:9, seed 5",
     {"seconds": 10.0, "fps": 24, "aspect": "16:9"}, 1),
    ("3 red balls", {}, 3),
    ("three red balls", {}, 3),
    ("2 red and 1 blue ball", {}, 3),
    ("a 10-second video of 2 balls", {"seconds": 10.0}, 2),
    ("三个红球", {}, 3),
    ("三個紅球", {}, 3),
    ("3个红球", {}, 3),
    ("做一个16:9的视频，两个球，24fps", {"aspect": "16:9", "fps": 24}, 2),
    ("一个红球，分辨率512", {"resolution": 512}, 1),
    ("红球 1080P 竖屏", {"aspect": "9:16", "resolution": 1080}, 1),
    ("三个球，时长5秒，帧率24，分辨率720", {"seconds": 5.0, "fps": 24, "resolution": 720}, 3),
    ("两个球在跳，种子42", {}, 2),
    ("一个球，9比16", {"aspect": "9:16"}, 1),
    ("红球10s", {"seconds": 10.0}, 1),
]


@pytest.mark.parametrize("request_text, params, count", NUMBER_CASES)
def test_numbers_of_parameters_are_not_object_counts(request_text, params, count):
    intent = expand(request_text, similarity_threshold=OFF)
    assert (intent.params, len(intent.scene.objects)) == (params, count), intent.english


def test_a_number_that_counts_nothing_is_reported_not_read_as_objects():
    for text, number in (("a red ball at 512", "512"), ("a red ball bouncing for 10", "10"), ("一个红球 1080", "1080"),
                         ("step 3: a red ball", "3"), ("a red ball, 1.5", "1.5")):
        intent = expand(text, similarity_threshold=OFF)
        assert [(o.color, o.shape) for o in intent.scene.objects] == [("red", "ball")], text
        assert number in intent.not_understood and intent.params == {}, text
    # numbers parse_prompt drops itself stay: event times and repeats
    caption = "A red ball bounces to the left. After about 1.5 seconds the red ball bounces off a wall 3 times."
    assert expand(caption, similarity_threshold=OFF).not_understood == []


def test_a_seed_in_the_request_is_a_note_not_a_count():
    for text in ("a red ball, seed 42", "seed=42 a red ball", "a red ball, random seed: 42", "一个红球，种子：42"):
        intent = expand(text, similarity_threshold=OFF)
        assert len(intent.scene.objects) == 1 and intent.not_understood == [], text
        assert any("seed" in note and "42" in note for note in intent.notes), text


def test_conflicting_parameters_keep_the_first_and_say_so():
    intent = expand("vertical, 16:9, a red ball", similarity_threshold=OFF)
    assert intent.params == {"aspect": "9:16"} and any("kept the first" in a for a in intent.assumed)


def test_camera_without_a_direction_is_an_assumption():
    intent = expand("a red ball bouncing, camera pans", similarity_threshold=OFF)
    assert intent.params["camera"] == "pan right" and any("names no direction" in a for a in intent.assumed)


def test_request_fields_pass_validation():
    intent = expand("一個紅色的球在彈跳，豎屏，3秒", similarity_threshold=OFF)
    request = validate_request(**intent.request_fields(), seed=0)
    assert request.height > request.width and request.seconds == 3.0 and request.prompt == intent.prompt
    assert request.negative == intent.negative


# --- the scene keeps what was said ----------------------------------------------------------------------------

@pytest.mark.parametrize("request_text", [
    "a red ball bouncing to the left on a wooden floor", "two green squares spinning, camera zooms in",
    "一个小红球在左上角向右下方滑动", "蓝色的星星顺时针绕圈，背景是夜空", "红球撞上蓝色方块",
    "红球在蓝色方块后面经过", "a small yellow triangle falling, and a purple ring growing slowly",
])
def test_the_caption_never_contradicts_the_request(request_text):
    for seed in range(3):
        intent = expand(request_text, seed=seed, similarity_threshold=OFF)
        asked = parse_prompt(intent.english)
        said_back = parse_prompt(intent.prompt)
        by_color = {o["color"]: o for o in said_back["objects"]}
        for o, drawn in zip(asked["objects"], intent.scene.objects):
            for key in ("color", "shape", "motion", "direction", "size", "speed", "position"):
                if o[key] and key not in ("speed", "position"):
                    assert getattr(drawn, key) == o[key], (request_text, seed, key)
                if o[key] and key in ("shape", "motion", "direction") or (o[key] and intent.level == "long"
                                                                           and key in ("size", "speed")):
                    assert by_color[drawn.color][key] == o[key], (request_text, seed, key, intent.prompt)
        for key in ("background", "camera"):
            if asked[key] or key in intent.params:
                assert said_back[key] in (asked[key], intent.params.get(key)), (request_text, key)


def test_chinese_word_order_behind_and_collide():
    behind = expand("红球在蓝色方块后面经过", similarity_threshold=OFF)
    assert behind.scene.scenario == "occlusion"
    assert [(o.color, o.shape, o.motion) for o in behind.scene.objects] == [("red", "ball", "slide"),
                                                                           ("blue", "square", "still")]
    assert behind.scene.objects[0].depth > behind.scene.objects[1].depth
    assert expand("红球撞上蓝色方块", similarity_threshold=OFF).scene.scenario == "collision"


def test_same_seed_same_intent_and_the_seed_fills_what_was_left_open():
    a, b = expand("a ball", seed=5, similarity_threshold=OFF), expand("a ball", seed=5, similarity_threshold=OFF)
    assert a.to_dict() == b.to_dict()
    prompts = {expand("a ball", seed=s, similarity_threshold=OFF).prompt for s in range(6)}
    assert len(prompts) > 1
    assert all(o.shape == "ball" for s in range(6)
               for o in expand("a ball", seed=s, similarity_threshold=OFF).scene.objects)


def test_bad_requests_are_named():
    for bad in ("", "   ", None):
        with pytest.raises(InvalidRequest) as err:
            expand(bad)
        assert err.value.field == "prompt"
    with pytest.raises(InvalidRequest):
        expand("ten balls bouncing", similarity_threshold=OFF)
    with pytest.raises(InvalidRequest) as err:
        expand("a ball", backend="gpt")
    assert err.value.field == "intent_backend"


@pytest.mark.parametrize("odd", ["10", "!!!", "🙂🙂", "a " * 400, "10:30", "0 seconds", "-5s", "square square",
                                 "不要", "no", "without", "镜头", "2x", "1e9 seconds", "9999999999 fps", "一千秒",
                                 "a slow ball, 1000 seconds", "ＲＥＤ　ＢＡＬＬ，１０秒", "İstanbul ball", "a minute and a half",
                                 "一分半钟", "の球", "red\nball\tbouncing"])
def test_odd_requests_do_not_crash(odd):
    try:
        intent = expand(odd, similarity_threshold=OFF)
    except InvalidRequest as err:        # e.g. more objects than ToyWorld holds: a named error, never a crash
        assert err.field == "prompt"
        return
    assert intent.prompt and intent.scene.duration <= 60


def test_minutes_and_halves():
    assert expand("a minute and a half of a red ball", similarity_threshold=OFF).params == {"seconds": 90.0}
    assert expand("一分半钟，红球", similarity_threshold=OFF).params == {"seconds": 90.0}
    assert expand("ＲＥＤ　ＢＡＬＬ，１０秒", similarity_threshold=OFF).params == {"seconds": 10.0}


def test_summary_shows_prompt_parameters_and_choices():
    intent = expand("一個紅色的球在彈跳，豎屏，10秒", similarity_threshold=OFF)
    assert json.loads(json.dumps(intent.to_dict(), ensure_ascii=False))["params"] == intent.params
    text = intent.summary()
    for part in ("prompt:", "aspect 9:16", "seconds 10", "豎屏 → aspect 9:16", "assumed:", "drawn from seed 0"):
        assert part in text, part


# --- words by similarity ----------------------------------------------------------------------------------------

def test_unknown_words_map_to_concepts_above_the_threshold(encoder):
    intent = expand("a globe leaping to the left", encoder=encoder)
    (o,) = intent.scene.objects
    assert (o.shape, o.motion, o.direction) == ("ball", "bounce", "left")
    assert intent.not_understood == []
    assert any("'globe' read as shape 'ball'" in a for a in intent.assumed)
    found = closest_concepts(["globe", "leaping", "enormous"], encoder)
    assert found["globe"][:2] == ("shape", "ball") and found["leaping"][:2] == ("motion", "bounce")
    assert found["enormous"][:2] == ("size", "large")
    assert all(f[2] >= SIMILARITY_THRESHOLD for f in found.values())


def test_below_the_threshold_words_are_reported_not_guessed(encoder):
    strict = expand("a globe leaping to the left", encoder=encoder, similarity_threshold=0.95)
    assert strict.not_understood == ["globe", "leaping"]
    intent = expand("a cobalt hexagon", encoder=encoder)   # nearest: red (0.53), triangle (0.44)
    assert set(intent.not_understood) == {"cobalt", "hexagon"}


def test_gibberish_is_recorded_as_not_understood_not_dropped(encoder):
    intent = expand("xqzt blorf, vertical", encoder=encoder)
    assert intent.not_understood == ["xqzt", "blorf"]
    assert intent.params == {"aspect": "9:16"} and intent.prompt        # a video can still be made
    assert "xqzt" in intent.summary()
    similarity = closest_concepts(["xqzt", "blorf"], encoder)
    assert all(s < SIMILARITY_THRESHOLD for _, _, s, _ in similarity.values())
    assert expand("一只狗在草地上跑", similarity_threshold=OFF).not_understood == ["狗"]


# --- negative prompts ---------------------------------------------------------------------------------------------

def test_negative_prompt_has_a_default_and_what_the_request_avoids():
    assert expand("a red ball", similarity_threshold=OFF).negative == DEFAULT_NEGATIVE
    intent = expand("a red ball, no people and no logos", similarity_threshold=OFF)
    assert intent.negative == DEFAULT_NEGATIVE + ", people, logos"
    assert expand("一个红球，不要文字和人", similarity_threshold=OFF, default_negative="").negative == "text, people"
    assert expand("一个红球，别用蓝色", similarity_threshold=OFF, default_negative="").negative == "blue"


def test_things_to_avoid_are_kept_out_of_the_scene():
    for seed in range(12):
        intent = expand("three shapes, no stars, without green", seed=seed, similarity_threshold=OFF)
        assert all(o.shape != "star" and o.color != "green" for o in intent.scene.objects), seed
        assert "stars" in intent.negative and "green" in intent.negative
    chinese = [expand("两个形状，不要星星", seed=s, similarity_threshold=OFF) for s in range(8)]
    assert all(o.shape != "star" for i in chinese for o in i.scene.objects)


def test_asking_for_and_against_the_same_thing_keeps_what_was_asked():
    intent = expand("a red ball, no red", similarity_threshold=OFF)
    assert intent.scene.objects[0].color == "red" and any("kept it, as asked" in a for a in intent.assumed)


# --- the LLM back end against a local server ------------------------------------------------------------------------

class _ChatServer(BaseHTTPRequestHandler):
    """Stands in for a remote LLM: a local HTTP server speaking the OpenAI chat-completions wire format. It answers
    every POST /v1/chat/completions with the next of `replies` (a string: the message content; an int: that HTTP
    status) and keeps the request bodies and headers it got."""
    replies: ClassVar[list] = []
    received: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        reply = type(self).replies.pop(0)
        if isinstance(reply, int):
            payload, status = {"error": {"message": "boom", "type": "server_error"}}, reply
        else:
            status = 200
            payload = {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": body["model"],
                       "choices": [{"index": 0, "finish_reason": "stop",
                                    "message": {"role": "assistant", "content": reply}}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def llm_server():
    pytest.importorskip("openai")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LLMConfig(base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="test-model",
                    api_key="sk-test", timeout=10, max_retries=0)
    server.shutdown()
    server.server_close()


def _answer(**changes) -> str:
    answer = {"objects": [{"color": "red", "shape": "ball", "size": None, "motion": "bounce", "direction": "left",
                           "speed": None, "position": None}],
              "relations": [], "background": "ocean", "camera": "zoom in", "aspect": "9:16", "seconds": 4,
              "fps": None, "speed": None, "loop": False, "style": ["cinematic"], "avoid": ["text", "stars"],
              "not_understood": [], "english": "a red ball bouncing to the left over the ocean"}
    return json.dumps(answer | changes)


def test_llm_answer_is_validated_and_used(llm_server):
    _ChatServer.replies[:] = [_answer()]
    _ChatServer.received.clear()
    intent = expand("一個紅色的球在海上向左彈跳，鏡頭拉近，豎屏，4秒", backend="llm", llm=llm_server)
    assert intent.backend == "llm" and len(intent.notes) == 1 and "style cinematic" in intent.notes[0]
    assert intent.params == {"aspect": "9:16", "seconds": 4, "camera": "zoom in", "style": ["cinematic"]}
    (o,) = intent.scene.objects
    assert (o.color, o.shape, o.motion, o.direction) == ("red", "ball", "bounce", "left")
    assert (intent.scene.background, intent.scene.camera) == ("ocean", "zoom in")
    assert intent.negative == DEFAULT_NEGATIVE + ", stars"
    (sent,) = _ChatServer.received
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer sk-test"
    assert sent["body"]["model"] == "test-model" and sent["body"]["response_format"]["type"] == "json_schema"
    assert sent["body"]["messages"][-1]["content"] == "一個紅色的球在海上向左彈跳，鏡頭拉近，豎屏，4秒"


@pytest.mark.parametrize("reply, reason", [
    ("Sure! Here is a red ball: it bounces.", "JSONDecodeError"),
    (_answer(objects=[{"color": "crimson", "shape": "ball", "size": None, "motion": "bounce", "direction": None,
                       "speed": None, "position": None}]), "objects[0].color: 'crimson'"),
    (_answer(aspect="7:3"), "aspect: '7:3'"),
    (json.dumps({"objects": []}), "missing"),
    (500, "InternalServerError"),
])
def test_a_bad_llm_answer_falls_back_to_the_embedded_parser_with_a_note(llm_server, reply, reason):
    _ChatServer.replies[:] = [reply]
    request = "一個紅色的球在彈跳，豎屏，10秒"
    intent = expand(request, backend="llm", llm=llm_server, similarity_threshold=OFF)
    embedded = expand(request, similarity_threshold=OFF)
    assert intent.backend == "embedded" and reason in intent.notes[0] and "embedded parser" in intent.notes[0]
    assert (intent.prompt, intent.params, intent.negative) == (embedded.prompt, embedded.params, embedded.negative)


def test_llm_configuration_from_the_environment(llm_server, monkeypatch):
    for name in ("BASE_URL", "MODEL", "API_KEY"):
        monkeypatch.delenv(f"STRAIGHTLINE_LLM_{name}", raising=False)
    unconfigured = expand("a red ball", backend="llm", similarity_threshold=OFF)
    assert unconfigured.backend == "embedded" and "no LLM endpoint configured" in unconfigured.notes[0]
    assert expand("a red ball", backend="auto", similarity_threshold=OFF).notes == []
    monkeypatch.setenv("STRAIGHTLINE_LLM_BASE_URL", llm_server.base_url)
    monkeypatch.setenv("STRAIGHTLINE_LLM_MODEL", "env-model")
    _ChatServer.replies[:] = [_answer()]
    _ChatServer.received.clear()
    intent = expand("a red ball", backend="auto", llm=LLMConfig(max_retries=0))
    assert intent.backend == "llm" and _ChatServer.received[0]["body"]["model"] == "env-model"
