"""Intent: a short, casual request in English or Chinese -> a detailed caption, parameters and a negative prompt.

    intent = expand("一個紅色的球在彈跳，豎屏，10秒", seed=0)
    intent.prompt       # a ToyWorld caption, worded as the model was trained on ("A large red ball bounces ...")
    intent.params       # {"aspect": "9:16", "seconds": 10.0}: only what the request asked for or implied
    intent.negative     # DEFAULT_NEGATIVE plus whatever the request said to leave out
    print(intent.summary())   # what to show the user: prompt, parameters, what was understood and assumed

The embedded back end (offline, the default) works in four steps:

    1. normalise   full-width forms to ASCII, traditional characters to simplified (a table of the characters the
                   lexicon uses), lower case: one character for one, so every span still points into the request
    2. parameters  regular expressions find aspect, duration, fps, resolution or size, camera moves, speed, style
                   words, loops and "no ..." / "不要..." in either language and cut them out of the description
    3. scene       Chinese is read by longest match over ZH_LEXICON into ToyWorld English; the English goes through
                   world.prompt.parse_prompt. A word it does not know is mapped to the concept whose words are most
                   similar under the text encoder when that similarity is at least SIMILARITY_THRESHOLD (and clearly
                   above the runner-up), and recorded as an assumption; below it, it is reported as not understood
    4. caption     world.prompt.scene_from_parse draws what the request left open from the seed (avoiding what it
                   said to leave out); the scene's "medium" caption is the prompt, or its "long" one when the request
                   fixes something only long captions state (size, speed, start position, collisions, depth)

The LLM back end sends the request to any OpenAI-compatible chat endpoint (LLMConfig, or the environment variables
STRAIGHTLINE_LLM_BASE_URL / _MODEL / _API_KEY) and asks for the same facts in JSON_SCHEMA; every value is checked
against the vocabulary and the answer continues at step 4. On any failure it falls back to the embedded back end and
says why in `notes`. It needs the optional `openai` package (pip install "straightline[llm]").
"""

import json
import os
import re
import weakref
from dataclasses import dataclass, field

from .errors import InvalidRequest
from .model import DEFAULTS
from .request import parse_aspect
from .world import vocab
from .world.captions import captions
from .world.prompt import (  # the private names are the words parse_prompt knows and how it splits them
    _LEXICON,
    _SHAPE_NOUNS,
    _WORDS,
    POSITIONS,
    _tokens,
    parse_prompt,
    scene_from_parse,
)

# A common default for video models. ToyWorld captions never contain these words, so measure it against ""
# (benchmarks/bench_intent.py takes --negative) before relying on it.
DEFAULT_NEGATIVE = "blurry, flickering, distorted shapes, text, watermark"

# Calibrated on all-MiniLM-L6-v2, word against word: over ~45 unrelated words and gibberish the best similarity to
# any concept word was 0.60 ("sky" ~ "flying"), while clear synonyms score higher: "globe" ~ ball 0.74, "leaping" ~
# bounce 0.88, "soaring" ~ slide 0.75, "enlarging" ~ grow 0.70, "enormous" ~ large 0.85. Colour names it barely
# separates ("cobalt" is nearest to red), so those fall below the threshold and are reported, not guessed.
SIMILARITY_THRESHOLD = 0.65
SIMILARITY_MARGIN = 0.05    # over the best other value of the same kind ("plunging": fall 0.60, slide 0.59)

MAX_SCENE_SECONDS = 60.0    # the scene behind a caption is simulated for at most this long (captions tell events)
ASPECTS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21", "2:1", "1:2", "3:2", "2:3", "4:5", "5:4")
MOTION_WORDS = {"still": "still", "slide": "sliding", "bounce": "bouncing", "fall": "falling", "orbit": "orbiting",
                "spin": "spinning", "grow": "growing", "shrink": "shrinking"}
SPEED_WORDS = {"slow": "slowly", "medium": "steadily", "fast": "quickly"}


@dataclass
class Intent:
    """What a request was taken to mean. `params` holds only what was asked for or implied; the rest is the
    model's defaults. `understood` entries are {"said": the user's words or None, "meaning": ...}."""
    request: str
    prompt: str                       # the detailed caption to generate from
    negative: str
    params: dict                      # aspect, seconds, fps, resolution, size, camera, speed, style, loop
    language: str                     # "en" or "zh" (either script)
    understood: list[dict] = field(default_factory=list)
    assumed: list[str] = field(default_factory=list)       # filled in from the seed, or changed, and why
    not_understood: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)         # style kept as notes, back-end fallbacks, ...
    english: str = ""                 # the scene part of the request in ToyWorld English
    backend: str = "embedded"
    seed: int = 0                     # the seed the scene was drawn with
    level: str = "medium"             # caption level of `prompt`
    scene: object = field(default=None, repr=False)
    given: frozenset = frozenset()    # names of the fields the caller set itself (flags, API fields)

    def request_fields(self) -> dict:
        """Keyword arguments for pipeline.validate_request: prompt, negative and the parameters it takes, less
        those the caller set itself (`given`; fields given win over words). An explicit size replaces the
        words' aspect and resolution, an aspect or resolution the words' size, frames the words' seconds."""
        fields = {"prompt": self.prompt, "negative": self.negative}
        fields |= {k: self.params[k] for k in ("seconds", "fps", "size") if k in self.params}
        if "size" not in self.params:
            fields |= {k: self.params[k] for k in ("aspect", "resolution") if k in self.params}
        given = self.given
        overridden = given | ({"aspect", "resolution"} if "size" in given else set()) \
            | ({"size"} if {"aspect", "resolution"} & given else set()) | ({"seconds"} if "frames" in given else set())
        return {k: v for k, v in fields.items() if k not in overridden}

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("request", "prompt", "negative", "params", "language", "understood",
                                                "assumed", "not_understood", "notes", "english", "backend", "seed",
                                                "level")}

    def summary(self) -> str:
        """Lines to show the user before generating: the expanded prompt and every choice made."""
        shown = {k: ", ".join(v) if isinstance(v, list) else f"{v:g}" if isinstance(v, float) else v
                 for k, v in self.params.items()}
        params = ", ".join(f"{k} {v}" for k, v in shown.items())
        said = [f"{u['said']} → {u['meaning']}" if u["said"] else u["meaning"] for u in self.understood]
        lines = [f"request:    {self.request}  ({self.language}, {self.backend} back end)",
                 f"prompt:     {self.prompt}", f"negative:   {self.negative or '(none)'}",
                 f"parameters: {params or '(model defaults)'}"]
        for name, items in (("understood", said), ("assumed", self.assumed),
                            ("not understood", self.not_understood), ("notes", self.notes)):
            if items:
                lines.append(f"{name + ':':11s} " + "; ".join(items))
        return "\n".join(lines)


# --- 1. normalise ---------------------------------------------------------------------------------------------

# Traditional -> simplified for the characters the lexicon and the parameter patterns use (pairs, traditional
# first). Others pass through unchanged and, if not understood, are reported as such.
_T2S_PAIRS = ("紅红綠绿藍蓝黃黄銀银彈弹動动躍跃過过運运飛飞飄飘滾滚轉转繞绕環环圓圆變变縮缩脹胀擴扩靜静後后從从"
              "邊边側侧頂顶間间塊块個个兩两隻只顆颗條条團团幾几倆俩豎竖竪竖橫横寬宽畫画視视頻频電电質质鏡镜頭头"
              "搖摇機机攝摄遠远進进緩缓勻匀裡里裏里灘滩陽阳盤盘紋纹牆墙點点鐘钟幀帧這这來来給给幫帮請请讓让們们"
              "為为與与還还時时針针順顺無无沒没別别帶带顯显現现標标誌志閃闪爍烁聲声樂乐寫写實实復复懷怀舊旧簡简"
              "約约極极夢梦愛爱賽赛龐庞風风縫缝墜坠體体號号對对準准經经擺摆著着種种樣样長长級级麗丽東东製制錄录"
              "場场態态麼么嗎吗兒儿於于減减慢慢夠够開开關关處处擋挡蓋盖屬属這这個个緣缘圍围")
_T2S = {ord(t): s for t, s in zip(_T2S_PAIRS[::2], _T2S_PAIRS[1::2])}
_S2T = {s: t for t, s in zip(_T2S_PAIRS[::2], _T2S_PAIRS[1::2])} | {"里": "裡", "竖": "豎"}
_PUNCTUATION = {ord(a): b for a, b in zip("，。、；！？：（）～“”‘’　《》【】", ",.,;!?:()~\"\"'' <>[]")}
_CJK = re.compile(r"[\u3400-\u9fff]")


def _normalise(text: str) -> str:
    """Same length as `text`: full-width ASCII and CJK punctuation to ASCII, traditional to simplified, lower case."""
    chars = [chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else c for c in text]
    out = "".join(chars).translate(_PUNCTUATION).translate(_T2S)
    lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in out)
    assert len(lowered) == len(text)
    return lowered


def to_traditional(text: str) -> str:
    """Simplified -> traditional for the characters of the table above (for tests and benchmarks)."""
    return "".join(_S2T.get(c, c) for c in text)


class _Work:
    """The normalised request being consumed. Spans that were understood are replaced by one private-use character
    (standing for the English it means, or for nothing) padded with spaces, so positions stay those of the request
    and no later pattern can match inside them."""

    def __init__(self, request: str):
        self.request, self.text = request, _normalise(request)
        self.inserts: dict[str, str] = {}
        self.understood: list[dict] = []
        self.spans: list[tuple[int, int]] = []

    def free(self, start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in self.spans)

    def take(self, start: int, end: int, meaning: str | None, english: str = "") -> None:
        key = chr(0xE000 + len(self.inserts))
        self.inserts[key] = english
        self.spans.append((start, end))
        self.text = self.text[:start] + key + " " * (end - start - 1) + self.text[end:]
        if meaning:
            self.understood.append({"said": self.request[start:end].strip(), "meaning": meaning})

    def english(self, text: str | None = None) -> str:
        return "".join(f" {self.inserts[c]} " if c in self.inserts else c for c in (text or self.text))


# --- 2. parameters --------------------------------------------------------------------------------------------

_EN_NUMBERS = {w: n for n, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                                           "nine", "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen",
                                           "sixteen", "seventeen", "eighteen", "nineteen"))}
_EN_NUMBERS |= {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90}
_EN_NUMBER = (r"\d+(?:\.\d+)?|half an?|a couple of|(?:twenty|thirty|forty|fifty)[- ](?:one|two|three|four|five|six|"
              r"seven|eight|nine)|" + "|".join(sorted(_EN_NUMBERS, key=len, reverse=True)))
_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "俩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_ZH_NUMBER = r"\d+(?:\.\d+)?|[零一二两三四五六七八九十百半]+"
_START = r"(?<![a-z0-9.])"   # a word start that also holds after a Chinese character ("做一个16:9的", "红球10s")


def _en_number(word: str) -> float:
    word = word.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", word):
        return float(word)
    if word.startswith("half"):
        return 0.5
    if word == "a couple of":
        return 2.0
    if word in ("a", "an"):
        return 1.0
    return float(sum(_EN_NUMBERS[w] for w in re.split(r"[- ]", word)))


def _zh_number(word: str) -> float | None:
    if re.fullmatch(r"\d+(?:\.\d+)?", word):
        return float(word)
    if word == "半":
        return 0.5
    total, digit = 0, 0
    for ch in word:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        elif ch in "十百":
            total, digit = total + (digit or 1) * (10 if ch == "十" else 100), 0
        else:
            return None
    return float(total + digit)


def _seconds(m: re.Match) -> float | None:
    """Duration of a match of one of the _DURATION patterns (group 1 a number, group 2 the unit)."""
    before = m.string[max(0, m.start() - 24):m.start()]
    if re.search(r"\b(?:after|at|every|within)\s+(?:about\s+|around\s+|roughly\s+)?$", before):
        return None            # "after about 2 seconds" says when something happens, not how long the video is
    value = _zh_number(m.group(1)) if _CJK.search(m.group(1)) else _en_number(m.group(1))
    if value is None:
        return None
    unit = m.group(2)
    value *= 60 if unit.startswith(("m", "分")) else 1
    return value + (30 if "半" in unit or unit.endswith("and a half") else 0)


_DURATION = [
    r"\b(half a|a|one)\s+(minute and a half)\b",
    r"\b(half a|a|one)\s+(minute)\b",
    rf"{_START}({_EN_NUMBER})\s*-?\s*(minutes?|mins?)\b(?:\s+long)?",
    (_START + r"(\d+(?:\.\d+)?|(?:one|two|three|four|five|six|seven|eight|nine|ten|twelve|fifteen|twenty|thirty|forty|"
     r"fifty|sixty|half a|a couple of)(?:[- ](?:one|two|three|four|five|six|seven|eight|nine))?)\s*-?\s*"
     r"(seconds?|secs?|s)\b(?:\s+long)?"),
    rf"({_ZH_NUMBER})\s*(分钟半|分半钟|分半|分钟)",
    rf"({_ZH_NUMBER})\s*(秒钟|秒)",
]
_FPS = [_START + r"(\d{1,3}(?:\.\d+)?)\s*(?:fps|frames?\s*(?:per|/|a)\s*(?:second|sec|s))\b",
        r"\b(?:fps|frame ?rate)\s*(?:of\s+|is\s+|[:=]\s*)?(\d{1,3}(?:\.\d+)?)\b(?!\s*(?:seconds?|secs?|s)\b)",
        rf"每秒\s*({_ZH_NUMBER})\s*帧", rf"({_ZH_NUMBER})\s*帧(?:每秒|/秒|/s)?",
        r"帧率\s*(?:是|为)?\s*[:=]?\s*(\d{1,3}(?:\.\d+)?)"]
_RESOLUTION = [_START + r"(\d{3,4})\s*(?:p|px|pixels?|像素)(?![a-z])",
               r"\b(?:resolution|res)\s*(?:of\s+|is\s+|[:=]\s*)?(\d{3,4})\b",
               _START + r"(\d{3,4})\s*(?:resolution|res)\b",
               r"分辨率\s*(?:是|为)?\s*[:=]?\s*(\d{3,4})"]
# a seed is a request field (--seed, the API's seed), not part of the scene: "seed 42", "random seed: 7", "种子42"
_SEED = [r"\b(?:random\s+)?seed\s*(?:number\s+|no\.?\s*|of\s+|is\s+|[:=#]\s*)?(\d+)\b",
         r"(?:随机)?种子\s*(?:号|数|是|为)?\s*[:=#]?\s*(\d+)"]

_ASPECT_PATTERNS = [  # (pattern, aspect); "{0}:{1}" takes the ratio written
    (_START + r"(\d{1,2}(?:\.\d+)?)\s*[:/]\s*(\d{1,2}(?:\.\d+)?)(?!\.?\d)", "{0}:{1}"),
    (_START + r"(\d{1,2})\s*(?:[x×]|by)\s*(\d{1,2})(?![\d.])", "{0}:{1}"),
    (r"(?<![\d.])(\d{1,2})\s*比\s*(\d{1,2})(?![\d.])", "{0}:{1}"),
    ((r"\b(?:vertical|portrait|upright|(?:smart)?phone|mobile|tik ?tok|douyin|reels?|(?:youtube )?shorts|stories|"
      r"story|instagram (?:stories|story|reels?))(?:\s+(?:format|mode|video|clip|orientation|aspect(?: ratio)?|screen|size|version|ratio))?\b"), "9:16"),
    (r"竖屏|竖版|竖向|竖幅|竖着|竖的|竖排|竖(?!直)|手机(?:屏幕|屏|尺寸|比例|版)?|抖音", "9:16"),
    ((r"\b(?:landscape|wide ?screen|horizontal|youtube)(?:\s+(?:format|mode|video|clip|orientation|"
      r"aspect(?: ratio)?|screen|version|ratio))?\b"), "16:9"),
    (r"横屏|横版|横向|横幅|横着|横的|宽屏|宽银幕", "16:9"),
    ((r"\bsquare\s+(?:format|mode|video|clip|frame|crop|aspect(?: ratio)?|ratio|version|screen)\b|"
      r"\b(?:make it|in|as)\s+(?:an?\s+)?square\b(?!\s+(?:spin|slid|mov|bounc|fall|drop|grow|shrink|rest|sit))|"
      r"\binstagram(?: post)?\b"), "1:1"),
    (r"(?:正?方形|方)(?:屏|版|画面|视频|格式|比例|尺寸)", "1:1"),
    # "square" / "方形" alone between commas is a format; inside a sentence it is a shape
    ((r"(?:^|(?<=[,.;!?]))\s*(?:(?:and|also|make it|in|but)\s+)?(?:square|正?方形)(?:\s+(?:please|pls|plz|too|thanks|"
      r"thx))?\s*(?=$|[,.;!?])"), "1:1"),
]
_CAMERA_PATTERNS = [  # (pattern, camera, assumed): "{0}" is the direction captured
    ((r"\b(?:static|fixed|locked(?:[- ]off)?|still|steady|stationary|tripod)\s+(?:camera|shot|view)\b|"
      r"\bno camera (?:movement|motion|moves?)\b|\bcamera\s+(?:is|stays|remains|holds)\s+"
      r"(?:static|still|fixed|steady|stationary)\b|\bcamera does(?:n't| not) move\b"), "static", False),
    (r"(?:固定|静止|不动的?)(?:镜头|机位|摄像机|相机|视角)|(?:镜头|机位|摄像机|相机|视角)(?:固定|静止|不动)(?:不动)?",
     "static", False),
    ((r"\b(?:(?:the\s+)?(?:camera|view|shot)\s+)?(?:slowly\s+|gently\s+)?(?:pans?|panning|panned)\s+"
      r"(?:slowly\s+)?(?:to(?:wards?)?\s+the\s+)?(left|right|up|down)(?:wards?)?\b"), "pan {0}", False),
    ((r"\b(?:(?:the\s+)?(?:camera|view|shot)\s+)?(?:slowly\s+)?(?:tilts?|tilting|tilted)\s+(?:slowly\s+)?"
      r"(up|down)(?:wards?)?\b"), "pan {0}", False),
    ((r"\b(?:the\s+)?(?:camera|view)\s+(?:slowly\s+)?(?:moves?|moving|tracks?|tracking|drifts?|drifting|travels?|"
      r"slides?|sliding|swings?)\s+(?:slowly\s+)?(?:to(?:wards?)?\s+the\s+)?(left|right|up|down)(?:wards?)?\b"),
     "pan {0}", False),
    (r"\b(?:(?:the\s+)?(?:camera|view|shot)\s+)?(?:slowly\s+)?(?:zooms?|zooming|zoomed)\s+(?:slowly\s+)?(in|out)\b",
     "zoom {0}", False),
    (r"\b(?:push(?:es|ing)?|doll(?:y|ies|ying))[- ]in\b", "zoom in", False),
    (r"\b(?:pull(?:s|ing)?)[- ](?:back|out)\b|\bdoll(?:y|ies|ying)[- ]out\b", "zoom out", False),
    (r"(?:镜头|摄像机|相机|视角|画面)(?:缓慢|慢慢|缓缓)?地?(?:推近|推进|拉近|靠近|放大|推)|推镜头|推近|推进|拉近", "zoom in",
     False),
    (r"(?:镜头|摄像机|相机|视角|画面)(?:缓慢|慢慢|缓缓)?地?(?:拉远|拉开|后退|缩小|拉)|拉镜头|拉远", "zoom out", False),
    ((r"(?:镜头|摄像机|相机|视角)(?:缓慢|慢慢|缓缓)?地?(?:向|往|朝)?(左|右|上|下)方?(?:平移|移动|横移|移|摇|摆|转动|转|扫)?|"
      r"(?:向|往|朝)?(左|右|上|下)(?:摇镜头|摇)"), "pan {0}", False),
    (r"\b(?:the\s+)?camera\s+(?:zooms?|zooming)\b|\bzoom(?:s|ing)?\s+shot\b", "zoom in", True),
    (r"\b(?:the\s+)?camera\s+(?:pans?|panning)\b|\bpan(?:ning)?\s+shot\b|\bpans?\b|\bpanning\b", "pan right", True),
    (r"\b(?:the\s+)?camera\s+(?:tilts?|tilting)\b|\btilts?\b|\btilting\b", "pan up", True),
    (r"摇镜头|平移镜头|运镜|镜头平移|镜头移动", "pan right", True),
    (r"变焦|缩放", "zoom in", True),
]
_ZH_DIRECTION = {"左": "left", "右": "right", "上": "up", "下": "down"}
_IDIOMS = [  # (pattern, English, meaning): phrases whose words would be misread one by one
    (r"\bzoom(?:s|ing|ed)?\s+(?:a)?round\b|\bzoom(?:s|ing|ed)?\s+about\b", "fast orbiting",
     "moving quickly around (orbit, fast; not a camera zoom)"),
    (r"\bzoom(?:s|ing|ed)?\s+(?:across|past|by|through|along|off)\b", "fast sliding",
     "moving quickly across (slide, fast; not a camera zoom)"),
    (r"\b(?:zooms|zooming|zoomed|whizz(?:es|ing)|zipp(?:s|ing))\b", "fast moving", "moving quickly (fast)"),
    (r"\bslow[- ]?mo(?:tion)?\b|\bslo[- ]?mo\b|慢动作|慢镜头|慢放", "", "slow motion (slow)"),
]
_SPEED_PATTERNS = [(r"\b(?:slow|slowly|slower|gentl[ey]|leisurely|lazily|calm|calmly|sluggish)\b", "slow"),
                   (r"慢|缓", "slow"),
                   (r"\b(?:fast|faster|quick|quickly|rapid|rapidly|swift|swiftly|speedy|speeding)\b", "fast"),
                   (r"快|迅速|飞速|急速", "fast")]
_STYLE_EN = (r"cinematic|filmic|film[- ]like|movie[- ]like|photo-?realistic|photoreal|realistic|cartoon(?:ish|y)?|"
             r"anime|3d|2d|minimalist|minimal|retro|vintage|nostalgic|dreamy|moody|dramatic|beautiful|gorgeous|epic|"
             r"aesthetic|hd|uhd|4k|8k|high[- ]quality|detailed|vibrant|colou?rful|pastel|neon|noir|"
             r"watercolou?r|pixel[- ]art|lo-?fi|smooth|clean|simple|playful|cute|cyberpunk|artistic|stylish|"
             r"professional|trippy|psychedelic|hyper-?realistic|studio lighting")
_STYLE_ZH = {"电影感": "cinematic", "电影风格": "cinematic", "电影级": "cinematic", "大片": "cinematic",
             "写实": "realistic", "真实感": "realistic", "逼真": "realistic", "卡通": "cartoon", "动漫": "anime",
             "二次元": "anime", "唯美": "aesthetic", "高清": "hd", "超清": "hd", "复古": "retro",
             "怀旧": "nostalgic", "简约": "minimalist", "极简": "minimalist", "梦幻": "dreamy", "可爱": "cute",
             "酷炫": "flashy", "炫酷": "flashy", "高质量": "high quality", "精美": "high quality",
             "赛博朋克": "cyberpunk", "像素风": "pixel art", "水彩": "watercolor", "油画": "oil painting",
             "风格": ""}
_LOOP = (r"\bseamless(?:ly)?\s+loop(?:ing|ed)?\b|\bloop(?:ing|able|ed)?\s+(?:video|clip|gif|animation)\b|"
         r"\bloopable\b|\b(?:make it|that)\s+loops?\b|\bperfect loop\b|\bin a loop\b(?=\s*(?:[,.;!?]|$))|"
         r"无缝循环|循环播放|循环视频|循环")
_AUDIO = r"\b(?:with|add|some)\s+(?:music|sound|audio|a soundtrack)\b|配乐|背景音乐|音乐|声音|音效"
_NEGATIVE_EN = (r"\b(?:no|without(?: any)?|avoid(?:ing)?|exclude|excluding|never show|minus|"
                r"(?:don'?t|do not)\s+(?:show|include|add|want|put|use)(?: any)?)\s+"
                r"([a-z][a-z '\-]*?)(?=\s*(?:[,.;!?]|$|\bbut\b|\bplease\b|\bpls\b|\band (?:make|a|an|the)\b))")
_NEGATIVE_ZH = (r"(?:不要|不想要|不需要|别|避免|去掉|去除|不含|不带|没有|无)(?:有|出现|带|加|显示|任何|用|使用|放|画)*"
                r"((?!动)[^,.;!?\s]+)")
_NEGATIVE_ZH_WORDS = {"文字": "text", "字幕": "subtitles", "文本": "text", "字": "text", "水印": "watermark",
                      "标志": "logo", "商标": "logo", "logo": "logo", "模糊": "blurry", "闪烁": "flickering",
                      "闪": "flickering", "变形": "distorted", "扭曲": "distorted", "人": "people", "人物": "people",
                      "噪点": "noise", "噪声": "noise", "抖动": "shaky", "重影": "ghosting", "卡顿": "stutter"}


def _avoid_in_english(item: str) -> str:
    """A Chinese thing to avoid in English (for the negative prompt); unchanged when not every word is known."""
    if item in _NEGATIVE_ZH_WORDS:
        return _NEGATIVE_ZH_WORDS[item]
    english, _, unknown = _read_chinese(_Work(item))
    return item if unknown else english


def _find(work: _Work, pattern: str, flags=0):
    """Matches of `pattern` in what is left of the request (a list, so spans can be taken while iterating)."""
    return list(re.finditer(pattern, work.text, flags))


def _set(params: dict, assumed: list[str], key: str, value, said: str) -> None:
    if key not in params:
        params[key] = value
    elif params[key] != value:
        assumed.append(f"{key}: the request also says '{said}' ({value}); kept the first, {params[key]}")


def _extract(work: _Work, params: dict, assumed: list[str], notes: list[str]) -> list[tuple[str, str]]:
    """Find every parameter in the request and cut it out; returns the things to avoid as (said, English)."""
    # camera moves that name their direction come first ("the camera slowly zooms out" is not fast motion), then
    # phrases whose words would be misread one by one ("zooming around" is), then camera moves that do not
    for explicit in (True, False):
        for pattern, camera, guessed in _CAMERA_PATTERNS:
            for m in (_find(work, pattern) if guessed != explicit else []):
                direction = next((g for g in m.groups() if g), None)
                value = camera.format(_ZH_DIRECTION.get(direction, direction))
                said = work.request[m.start():m.end()].strip()
                work.take(*m.span(), f"camera {value}")
                _set(params, assumed, "camera", value, said)
                if guessed:
                    assumed.append(f"camera: '{said}' names no direction; took {value}")
        for pattern, english, meaning in _IDIOMS if explicit else ():
            for m in _find(work, pattern):
                work.take(*m.span(), meaning, english)
                if "slow" in meaning or "fast" in meaning:
                    _set(params, assumed, "speed", "slow" if "slow" in meaning else "fast", m.group())
    for m in _find(work, r"\b(?:quick|short|little|fast)\s+(?=(?:video|clip|gif|animation|render|version)\b)"):
        work.take(*m.span(), None)           # "a quick video of ...": quick says how long the video is, not the speed
    for m in _find(work, _LOOP):
        work.take(*m.span(), "a seamless loop")
        params["loop"] = True
    for m in _find(work, _AUDIO):
        work.take(*m.span(), None)
        notes.append(f"'{work.request[m.start():m.end()]}': straightline makes silent video")
    aspects = sorted(((m, aspect.format(*m.groups())) for pattern, aspect in _ASPECT_PATTERNS
                      for m in _find(work, pattern)), key=lambda pair: pair[0].start())
    for m, value in aspects:              # in the order written, so the first one said is kept
        if value in ASPECTS and work.free(*m.span()):
            _set(params, assumed, "aspect", value, m.group().strip())
            work.take(*m.span(), f"aspect {value}")
    for m in _find(work, _START + r"(\d{2,4})\s*[x×*]\s*(\d{2,4})(?:\s*(?:px|pixels|像素))?(?![a-z\d])"):
        width, height = int(m.group(1)), int(m.group(2))
        if min(width, height) >= 32:
            _set(params, assumed, "size", f"{width}x{height}", m.group())
            work.take(*m.span(), f"size {width}x{height} pixels")
    for pattern in _RESOLUTION:
        for m in _find(work, pattern):
            _set(params, assumed, "resolution", int(m.group(1)), m.group())
            work.take(*m.span(), f"resolution {m.group(1)} (short side in pixels)")
    for pattern in _SEED:
        for m in _find(work, pattern):
            work.take(*m.span(), f"seed {m.group(1)}")
            notes.append(f"'{work.request[m.start():m.end()].strip()}': the seed is a request field (--seed, or "
                         "the API's seed), not part of the scene")
    for pattern in _DURATION:
        for m in _find(work, pattern):
            seconds = _seconds(m)
            if seconds is not None and seconds > 0:
                _set(params, assumed, "seconds", seconds, m.group())
                work.take(*m.span(), f"{seconds:g} seconds")
    for pattern in _FPS:
        for m in _find(work, pattern):
            fps = _zh_number(m.group(1)) if _CJK.search(m.group(1)) else float(m.group(1))
            if fps:
                _set(params, assumed, "fps", int(fps) if fps == int(fps) else fps, m.group())
                work.take(*m.span(), f"{fps:g} frames per second")
    styles = [(m, m.group()) for m in _find(work, rf"\b(?:{_STYLE_EN})\b(?:\s+(?:style|look|vibes?|feel))?")]
    styles += [(m, _STYLE_ZH[m.group()]) for m in _find(work, "|".join(sorted(_STYLE_ZH, key=len, reverse=True)))]
    for m, style in sorted(styles, key=lambda pair: pair[0].start()):
        if not work.free(*m.span()):
            continue
        work.take(*m.span(), f"style: {style}" if style else None)
        style = re.sub(r"\s+(?:style|look|vibes?|feel)$", "", style)
        if style and style.lower() not in [s.lower() for s in params.get("style", [])]:
            params.setdefault("style", []).append(style)
    avoid = []
    for pattern, zh in ((_NEGATIVE_EN, False), (_NEGATIVE_ZH, True)):
        for m in _find(work, pattern):
            items = [re.sub(r"^(?:no|any|without|not)\s+", "", item)
                     for item in re.split(r"\s*(?:\bor\b|\band\b|/|,|和|或|与|、)\s*", m.group(1).strip())]
            work.take(*m.span(), "avoid " + ", ".join(items))
            avoid += [(item, _avoid_in_english(item) if zh else item) for item in items if item]
    for pattern, speed in _SPEED_PATTERNS:         # left in the text: parse_prompt attaches them to objects
        if "speed" not in params and re.search(pattern, work.text):
            params["speed"] = speed
    return avoid


# --- 3. scene: Chinese lexicon ----------------------------------------------------------------------------------

def _keys(words: str, english: str) -> dict[str, str]:
    return {w: english for w in words.split()}


_COUNTS = {"一": "a", "两": "two", "二": "two", "三": "three", "四": "four", "五": "five", "六": "six", "几": "three"}
_MEASURES = "个 只 颗 枚 块 粒 条 团 位 件"
ZH_LEXICON: dict[str, str] = {  # simplified keys -> ToyWorld English ("" reads as nothing); longest match wins
    **{n + m: e for n, e in _COUNTS.items() for m in _MEASURES.split()}, "一": "a", "俩": "two",
    # colours
    **_keys("红 红色 大红 红红的", "red"), **_keys("橙 橙色 橘色 橘黄色 橙黄色", "orange"),
    **_keys("黄 黄色 金色 金黄色", "yellow"), **_keys("绿 绿色 翠绿", "green"), **_keys("青 青色 蓝绿色", "cyan"),
    **_keys("蓝 蓝色 深蓝色", "blue"), **_keys("紫 紫色", "purple"), **_keys("粉 粉色 粉红 粉红色", "pink"),
    **_keys("白 白色", "white"), **_keys("黑 黑色", "black"), **_keys("棕 棕色 褐色 咖啡色", "brown"),
    **_keys("灰 灰色 银色", "gray"),
    # shapes
    **_keys("球 球体 圆球 皮球 圆形 圆", "ball"), **_keys("圆环 环 环形 圆圈 圈 甜甜圈", "ring"),
    **_keys("方块 正方形 方形 盒子 立方体", "square"), **_keys("三角 三角形", "triangle"),
    **_keys("星 星星 五角星 星形", "star"), **_keys("十字 十字形 十字架 加号", "cross"),
    **_keys("形状 物体 东西 图形", "shape"),
    # sizes and speeds
    **_keys("小 小小的 很小 微小 迷你", "small"), **_keys("中等 中号 中等大小 中型", "medium"),
    **_keys("大 大大的 很大 巨大 大型 超大 大号", "large"),
    **_keys("慢 慢慢 慢慢地 缓慢 缓缓 慢速 慢悠悠 轻轻", "slowly"),
    **_keys("快 快速 迅速 飞快 飞速 急速 很快", "quickly"), **_keys("匀速 中速", "steadily"),
    # motions
    **_keys("弹跳 跳动 跳跃 蹦跳 蹦 跳 弹 弹起 上下跳", "bouncing"),
    **_keys("滑动 滑行 滑 滑过 平移", "sliding"), **_keys("移动 运动 移 动 走 跑 穿过 经过", "moving"),
    **_keys("飞 飞过 飞行", "flying"), **_keys("飘 飘过 飘动", "drifting"), **_keys("滚 滚动", "rolling"),
    **_keys("落下 下落 掉落 掉下 坠落 掉 落 落地", "falling"),
    **_keys("旋转 转动 自转 打转 转", "spinning"), **_keys("绕圈 转圈 画圈 绕 绕着 环绕 公转 兜圈", "orbiting"),
    **_keys("变大 长大 放大 膨胀 扩大 越来越大", "growing"), **_keys("变小 缩小 收缩 越来越小", "shrinking"),
    **_keys("静止 不动 一动不动 静止不动 静 停着 停 不要动 别动", "still"),
    **_keys("相撞 碰撞 撞在一起 互相碰撞", "colliding"), **_keys("撞上 撞向 撞到 撞 碰到", "crashes into"),
    **_keys("挡住 遮住 挡在", "in front of"),
    # directions and positions
    **{p + d: e for d, e in _ZH_DIRECTION.items() for p in ("向", "往", "朝", "")},
    **{p + d + s: e for d, e in _ZH_DIRECTION.items() for p in ("向", "往", "朝") for s in ("边", "方", "面")},
    **_keys("上升 升起 升", "rising"), **_keys("下降 下沉", "sinking"),
    **{p + h + v + s: f"{_ZH_DIRECTION[v]} and to the {_ZH_DIRECTION[h]}" for h in "左右" for v in "上下"
       for p in ("向", "往", "朝") for s in ("", "方")},
    **{f"从{a}{via}{b}": f"to the {_ZH_DIRECTION[b]}" if b in "左右" else _ZH_DIRECTION[b]
       for a, b in ("左右", "右左", "上下", "下上") for via in "到往向至"},
    **_keys("顺时针 顺时针方向", "clockwise"), **_keys("逆时针 逆时针方向 反时针", "counterclockwise"),
    **{h + v + s: f"in the {'upper' if v == '上' else 'lower'} {_ZH_DIRECTION[h]}" for h in "左右" for v in "上下"
       for s in ("角", "方")},
    **_keys("左边 左侧 左方 左面", "on the left"), **_keys("右边 右侧 右方 右面", "on the right"),
    **_keys("上方 顶部 顶上 上面", "at the top"), **_keys("下方 底部 下面", "at the bottom"),
    **_keys("中间 中央 中心 正中间 正中", "in the center"),
    **_keys("后面 背后 后方 后边", "behind"), **_keys("前面 前方 前边", "in front of"),
    # backgrounds
    **_keys("夜空 星空", "night sky"), **_keys("夜晚 晚上 夜里 黑夜 夜", "night"), **_keys("石板", "slate"),
    "灰色背景": "gray background", **_keys("沙子 沙地", "sand"), **_keys("沙滩 海滩", "beach"),
    **_keys("日落 夕阳 晚霞 落日", "sunset"), **_keys("海洋 大海", "ocean"), **_keys("海 海面", "sea"),
    **_keys("水下 海底", "underwater"), **_keys("黄昏 傍晚", "dusk"), **_keys("草地 草 草坪", "grass"),
    **_keys("草原 田野", "meadow"), **_keys("木地板 木头地板 地板", "wooden floor"), "木板": "wooden planks",
    **_keys("沙漠 沙丘", "desert"), **_keys("棋盘 棋盘格 格子", "checkerboard"), "条纹": "stripes",
    "条纹墙": "striped wall", **_keys("波点 圆点 斑点", "polka dots"),
    # joining words; the rest read as nothing
    **_keys("和 与 跟 还有 以及 并且", "and"), **_keys("同时 而 一边", "while"), **_keys("它", "it"),
    **_keys("它们 两者", "they"), **_keys("然后 接着", "then"), "又": "",
    **_keys("的 地 得 在 正在 着 了 过 一直 不断 不停 不停地 持续 持续地 逐渐 是 有 一起 上 里 中 之中 下 面 一段 视频 "
            "影片 动画 画面 场景 镜头 生成 制作 做 请 帮我 给我 我想要 我要 想要 要 让 把 来 起来 那 这 这个 那个 一下 "
            "吧 呢 啊 呀 哦 嗯 很 非常 特别 大约 大概 左右 约 差不多 时长 长度 时间 格式 比例 尺寸 从 到 沿着 画 再 也 "
            "都 就 会 能 可以 自己 出 出来 方向 速度 背景 背景是 里面 当中 一点 稍微 位于 处 个 只 颗 墙", ""),
}
_ZH_LONGEST = max(map(len, ZH_LEXICON))
_ZH_PLACE = {"在", "从", "位于", "处"}


def _read_chinese(work: _Work) -> tuple[str, list[dict], list[str]]:
    """Longest-match reading of the request (CJK runs via ZH_LEXICON; everything else passes through) into ToyWorld
    English. Returns (English, understood words, runs not understood)."""
    text, tokens, understood, unknown, i = work.text, [], [], [], 0
    while i < len(text):
        if not _CJK.match(text[i]):
            j = i + 1
            while j < len(text) and not _CJK.match(text[j]):
                j += 1
            tokens.append(("other", work.english(text[i:j])))
            i = j
            continue
        j = next((j for j in range(min(len(text), i + _ZH_LONGEST), i, -1) if text[i:j] in ZH_LEXICON), None)
        if j is None:                      # not a word we know: one run of unknown characters, kept as a word
            j = i + 1
            while j < len(text) and _CJK.match(text[j]) and not any(
                    text[j:k] in ZH_LEXICON for k in range(j + 1, min(len(text), j + _ZH_LONGEST) + 1)):
                j += 1
            unknown.append(work.request[i:j])
            tokens.append(("unknown", f" {text[i:j]} "))
        else:
            english = ZH_LEXICON[text[i:j]]
            kind = "place" if text[i:j] in _ZH_PLACE else "relation" if english in ("behind", "in front of") \
                else "word"
            tokens.append((kind, f" {english} "))
            if english:
                understood.append({"said": work.request[i:j], "meaning": english})
        i = j
    # "A 在 B 后面 V" (A Vs behind B) -> English order "A V behind B": the verb belongs to A, not to B
    for r, (kind, _) in enumerate(tokens):
        if kind != "relation":
            continue
        place = next((p for p in range(r - 1, -1, -1)
                      if tokens[p][0] == "place" or re.search(r"[,.;!?]", tokens[p][1])), None)
        if place is None or tokens[place][0] != "place":
            continue
        end = next((e for e in range(r + 1, len(tokens)) if re.search(r"[,.;!?]", tokens[e][1])), len(tokens))
        tokens[place:end] = tokens[r + 1:end] + [tokens[r]] + tokens[place + 1:r]
    return re.sub(r"\s+", " ", "".join(t for _, t in tokens)).strip(), understood, unknown


# --- 3. scene: numbers that count nothing ----------------------------------------------------------------------

# what may stand between a count and its noun: "3 small red bouncing balls", "2 red and 1 blue ball"
_BEFORE_NOUN = {"color", "size", "speed", "motion", "weak_motion", "direction", "rise", "collide", "count"}
_STRAY_NUMBER = r"(?<![\d.])\d+(?:\.\d+)?|\b(?:two|three|four|five|six|seven|eight|nine|ten)\b"  # "a red one" counts


def _counts_objects(text: str) -> bool:
    """Whether the number at the start of `text` counts objects: parse_prompt's tokens after it reach a shape noun
    past adjectives only. A number its first stage rewrites away ("3 times", "after about 1.5 seconds") is left to
    it, as a count."""
    number = re.match(_STRAY_NUMBER, text).group()
    if re.match(re.escape(number) + r"\s*[:/%#]", text):       # "step 3: a red ball", "100%"
        return False
    number, tokens = number.split(".")[0], _tokens(text)
    if not tokens or tokens[0] != number:
        return True
    for word in tokens[1:]:
        kind = word.split("=")[0] if "=" in word else "count" if word.isdigit() else _LEXICON.get(word, ("",))[0]
        if kind == "noun":
            return True
        if kind not in _BEFORE_NOUN and word not in ("and", "or", "other", "more"):
            return False
    return False


def _stray_numbers(english: str) -> tuple[str, list[str]]:
    """`english` without the numbers that count no objects, and those numbers. parse_prompt reads every number as a
    count and a count that meets no noun as that many shapes, so "a red ball at 512" (a resolution it was not said
    to be) or "bouncing for 10" would ask for hundreds of objects."""
    stray = []
    english = re.sub(r"(?<=[a-z])(?=\d)", " ", english)   # "x2", "1e9 seconds": judged as parse_prompt splits them
    for m in reversed(list(re.finditer(_STRAY_NUMBER, english))):
        if not _counts_objects(english[m.start():]):
            stray.insert(0, m.group())
            english = english[:m.start()] + " " + english[m.end():]
    return english, stray


# --- 3. scene: words by similarity ------------------------------------------------------------------------------

_BACKGROUND_ANCHORS = {"night": "night darkness", "slate": "slate", "sand": "sand beach", "sunset sky": "sunset",
                       "ocean": "ocean sea water underwater", "dusk": "dusk twilight evening",
                       "grassy field": "grass meadow lawn field", "wooden floor": "wooden floor floorboards",
                       "desert": "desert dunes", "checkerboard": "checkerboard chessboard", "striped wall": "stripes",
                       "polka dots": "dots polka"}
_ANCHORS = [(kind, value, word) for kind in ("color", "size", "speed", "motion")
            for value, words in _WORDS[kind].items() for word in words.split()]
_ANCHORS += [("shape", shape, word) for shape, words in _SHAPE_NOUNS.items() if shape for word in words.split()]
_ANCHORS += [("background", name, word) for name, words in _BACKGROUND_ANCHORS.items() for word in words.split()]
_ANCHOR_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # encoder -> anchor embeddings
# requests talk to us as well as about the scene: these words are neither scene nor "not understood"
_CHATTER = _keys(
    "make made it its please pls plz want wanna need like love show showing shows me us i you we can could "
    "would will do just some something really so very nice cool lol thanks thank thx hey hi ok okay let lets "
    "give create generate render produce animate draw style look vibe vibes feel version format aspect ratio "
    "mode orientation long length duration quality movie gif have has had be being been get kind sort maybe "
    "see here go now bit lot lots where showing featuring include includes including using use camera "
    "short quick frames frame fps per second seconds sec secs minute minutes", "chatter")


def _word(kind: str, value: str) -> str:
    return {"motion": MOTION_WORDS, "speed": SPEED_WORDS}.get(kind, {}).get(value, value)


def closest_concepts(words: list[str], encoder) -> dict[str, tuple[str, str, float, float]]:
    """For each word, the ToyWorld concept whose words are most similar under `encoder` (cosine of the pooled
    sentence embeddings): word -> (kind, value, similarity, margin over the best other value of that kind)."""
    if encoder not in _ANCHOR_CACHE:
        _ANCHOR_CACHE[encoder] = encoder([word for _, _, word in _ANCHORS]).pooled
    similarity = encoder(list(words)).pooled @ _ANCHOR_CACHE[encoder].T              # (words, anchors)
    result = {}
    for word, row in zip(words, similarity.tolist()):
        best: dict[tuple[str, str], float] = {}
        for (kind, value, _), s in zip(_ANCHORS, row):
            best[kind, value] = max(s, best.get((kind, value), -1.0))
        (kind, value), top = max(best.items(), key=lambda item: item[1])
        runner_up = max((s for (k, v), s in best.items() if k == kind and v != value), default=-1.0)
        result[word] = (kind, value, top, top - runner_up)
    return result


def _map_unknown(english: str, unknown: list[str], encoder, threshold: float, understood: list[dict],
                 assumed: list[str]) -> str:
    """`english` with the unknown words that are close enough to a concept replaced by that concept's word."""
    words = [w for w in dict.fromkeys(unknown) if w.isascii() and w.isalpha() and len(w) > 2 and w not in _CHATTER]
    if not words or threshold > 1:
        return english
    if encoder is None:
        from .text import load_text_encoder
        encoder = load_text_encoder()
    for word, (kind, value, similarity, margin) in closest_concepts(words, encoder).items():
        if similarity >= threshold and margin >= SIMILARITY_MARGIN:
            english = re.sub(rf"\b{re.escape(word)}\b", _word(kind, value), english)
            understood.append({"said": word, "meaning": f"{value} (nearest {kind}, similarity {similarity:.2f})"})
            assumed.append(f"'{word}' read as {kind} '{value}' (text-encoder similarity {similarity:.2f} >= "
                           f"{threshold:.2f})")
    return english


# --- 4. caption -------------------------------------------------------------------------------------------------

_EMPTY_PARSE = {"objects": [], "count": 0, "background": None, "camera": None, "relations": [], "notes": [],
                "unknown": []}
_FIXED = ("color", "size", "shape", "motion", "direction", "speed", "position")


def _describe(o: dict, keys=_FIXED) -> str:
    return ", ".join(f"{k} {o[k]}" for k in keys if o.get(k))


def _phrase(o: dict) -> str:
    """"small red ball, bounce left, slow, from the upper left": the attributes an object was given, in words."""
    noun = " ".join(o[k] for k in ("size", "color") if o.get(k)) + " " + (o.get("shape") or "shape")
    motion = " ".join(o[k] for k in ("motion", "direction") if o.get(k))
    return ", ".join(p for p in (noun.strip(), motion, o.get("speed"),
                                 f"from the {o['position']}" if o.get("position") else "") if p)


def _avoidance(items: list[tuple[str, str]], parsed: dict, assumed: list[str]) -> dict[str, set]:
    """Vocabulary values the request said to leave out (colours, shapes, motions, backgrounds), except those it
    also asked for, which win."""
    avoid: dict[str, set] = {}
    for said, english in items:
        try:
            p = parse_prompt(english)
        except InvalidRequest:
            continue
        found = [(k, o[k]) for o in p["objects"] for k in ("color", "shape", "motion") if o[k]]
        found += [(k, p[k]) for k in ("background",) if p[k]]
        for kind, value in found:
            wanted = parsed[kind] == value if kind == "background" else \
                any(o.get(kind) == value for o in parsed["objects"])
            if wanted:
                assumed.append(f"asked both for and against {kind} {value} ('{said}'): kept it, as asked")
            else:
                avoid.setdefault(kind, set()).add(value)
    return avoid


def _violates(scene, avoid: dict[str, set]) -> bool:
    return scene.background in avoid.get("background", ()) or any(
        getattr(o, kind) in values for o in scene.objects for kind, values in avoid.items() if kind != "background")


def _settle(parsed: dict, params: dict, understood: list[dict]) -> dict:
    """The request's objects with the camera and an overall speed put in, and what they fix written down."""
    parsed = {**parsed, "objects": [dict(o) for o in parsed["objects"]]}
    if params.get("camera"):
        parsed["camera"] = params["camera"]
    elif parsed["camera"]:
        params["camera"] = parsed["camera"]
    speed = params.get("speed")
    objects = parsed["objects"] or ([{}] if speed else [])
    if speed and not any(o.get("speed") for o in objects):   # "make it slow": every object that has a speed
        for o in objects:
            if o.get("motion") not in ("still", "fall"):
                o["speed"] = speed
        parsed["objects"] = objects
    for i, o in enumerate(parsed["objects"]):
        if _describe(o):
            understood.append({"said": None, "meaning": f"object {i + 1}: {_phrase(o)}"})
    for key in ("background", "camera"):
        if parsed[key] and key not in params:
            understood.append({"said": None, "meaning": f"{key}: {parsed[key]}"})
    for r in parsed["relations"]:
        verb = "collides with" if r["type"] == "collide" else "is behind"
        understood.append({"said": None, "meaning": f"object {r['objects'][0] + 1} {verb} object "
                                                     f"{r['objects'][1] + 1}"})
    return parsed


def _draw(parsed: dict, avoid: dict[str, set], seed: int, aspect: float, seconds: float, assumed: list[str]):
    """scene_from_parse, drawn again with derived seeds until nothing the request said to avoid is in it."""
    scene_seed = seed
    scene = scene_from_parse(parsed, scene_seed, aspect, seconds)
    for k in range(1, 200):
        if not _violates(scene, avoid):
            break
        scene_seed = seed + k * 1_000_003
        scene = scene_from_parse(parsed, scene_seed, aspect, seconds)
    if scene_seed != seed:
        assumed.append(f"scene drawn with seed {scene_seed}: seed {seed} drew something the request said to avoid")
    if _violates(scene, avoid):
        assumed.append("could not draw a scene without everything the request said to avoid")
    return scene


def _filled_in(parsed: dict, said, scene, aspect, seconds: float) -> list[str]:
    """What the scene has that the request did not say (`said`: the parameters its words or the caller set)."""
    assumed = []
    for i, (o, drawn) in enumerate(zip(parsed["objects"] or [{}], scene.objects)):
        filled = {k: getattr(drawn, k) for k in _FIXED if k != "position" and not o.get(k)
                  and getattr(drawn, k, None) is not None}
        if filled:
            assumed.append(f"object {i + 1}: {_describe(filled, tuple(filled))} (drawn from seed {scene.seed})")
    if not any(o.get(k) for o in parsed["objects"] for k in ("shape", "color", "motion")):
        assumed.append("the request names no object: one drawn from the seed")
    if not parsed["background"]:
        assumed.append(f"background {scene.background} (drawn from seed {scene.seed})")
    if not parsed["camera"]:
        assumed.append("camera static (no camera move asked)")
    if "aspect" not in said:
        assumed.append(f"aspect not given: scene framed for {aspect}")
    if "seconds" not in said:
        assumed.append(f"duration not given: scene timed for {seconds:g} s")
    return assumed


def _finish(request: str, language: str, parsed: dict, params: dict, avoid_items: list[tuple[str, str]],
            understood: list[dict], assumed: list[str], not_understood: list[str], notes: list[str], english: str,
            backend: str, *, seed: int, level: str, default_negative: str, default_aspect, default_seconds,
            default_fps: float, given: dict) -> Intent:
    """Steps shared by both back ends: settle the objects, draw the scene, caption it, write the record."""
    fixed = _fixed_shape(given, default_fps)
    parsed = _settle(parsed, params, understood)
    assumed += parsed["notes"]
    aspect = fixed.get("aspect", params.get("aspect", default_aspect))
    asked = float(fixed["seconds"] if fixed.get("seconds") else params.get("seconds", default_seconds))
    seconds = min(asked, MAX_SCENE_SECONDS)        # an image (fixed seconds 0): timed as if no seconds were given
    if seconds < asked:
        assumed.append(f"the caption describes the first {seconds:g} s (generation checks the duration itself)")
    avoid = _avoidance(avoid_items, parsed, assumed)
    scene = _draw(parsed, avoid, seed, parse_aspect(aspect), seconds, assumed)
    assumed += _filled_in(parsed, params.keys() | fixed.keys(), scene, aspect, seconds)

    if level == "auto":
        precise = [k for k in ("size", "speed", "position") if any(o.get(k) for o in parsed["objects"])]
        precise += ["collisions or depth"] if parsed["relations"] else []
        level = "long" if precise else "medium"
        if precise:
            assumed.append(f"long caption: the request fixes {', '.join(precise)}, which medium captions leave out")
    prompt = captions(scene, events=None if level == "long" else [])[level]   # only long captions tell events

    negative = [t.strip() for t in default_negative.split(",") if t.strip()]
    for said, english_item in avoid_items:
        if _CJK.search(english_item):
            not_understood.append(f"{said} (in what to avoid)")
        elif english_item not in negative:
            negative.append(english_item)
    if params.get("style"):
        notes.append(f"style {', '.join(params['style'])}: kept as a note (ToyWorld has no styles; the model never "
                     "saw these words)")
    return Intent(request=request, prompt=prompt, negative=", ".join(negative), params=params, language=language,
                  understood=understood, assumed=assumed, not_understood=list(dict.fromkeys(not_understood)),
                  notes=notes, english=english, backend=backend, seed=scene.seed, level=level, scene=scene,
                  given=frozenset(given))


# --- the embedded back end --------------------------------------------------------------------------------------

def _embedded(request: str, *, encoder, similarity_threshold: float, **finish) -> Intent:
    work = _Work(request)
    params, assumed, notes = {}, [], []
    avoid_items = _extract(work, params, assumed, notes)
    language = "zh" if _CJK.search(request) else "en"
    if language == "zh":
        english, zh_understood, zh_unknown = _read_chinese(work)
        work.understood += zh_understood
        if any(ord(c) in _T2S for c in request):
            notes.append("traditional characters read as their simplified forms")
    else:
        english, zh_unknown = re.sub(r"\s+", " ", work.english()).strip(), []
    english, stray = _stray_numbers(english)
    english = re.sub(r"\s+", " ", english)
    english = re.sub(r"\s*([,.;!?:])(?:\s*[,;:])*", r"\1", english).strip(" ,;:")   # "a ball , , " -> "a ball"
    parsed = dict(_EMPTY_PARSE)
    if re.search(r"[a-z]|[\u3400-\u9fff]", english):
        parsed = parse_prompt(english)
        mapped = _map_unknown(english, parsed["unknown"], encoder, similarity_threshold, work.understood, assumed)
        if mapped != english:
            english, parsed = mapped, parse_prompt(mapped)
    zh_runs = {_normalise(run): run for run in zh_unknown}
    not_understood = stray + [zh_runs.get(w, w) for w in parsed["unknown"] if w not in _CHATTER and not w.isdigit()]
    return _finish(request, language, parsed, params, avoid_items, work.understood, assumed, not_understood, notes,
                   english, "embedded", **finish)


# --- the LLM back end -------------------------------------------------------------------------------------------

@dataclass
class LLMConfig:
    """An OpenAI-compatible chat endpoint. Unset fields come from STRAIGHTLINE_LLM_BASE_URL, _MODEL, _API_KEY."""
    base_url: str | None = None       # e.g. "http://localhost:8000/v1"
    model: str | None = None
    api_key: str | None = None        # local servers usually need none
    timeout: float = 30.0             # seconds per attempt
    max_retries: int = 1

    def resolved(self) -> "LLMConfig":
        env = os.environ
        return LLMConfig(self.base_url or env.get("STRAIGHTLINE_LLM_BASE_URL"),
                         self.model or env.get("STRAIGHTLINE_LLM_MODEL"),
                         self.api_key or env.get("STRAIGHTLINE_LLM_API_KEY"), self.timeout, self.max_retries)


def _enum(values) -> dict:
    return {"type": ["string", "null"], "enum": [*values, None]}


_TURNS = ("clockwise", "counterclockwise")
_OBJECT_FIELDS = {"color": tuple(vocab.COLORS), "shape": vocab.SHAPES, "size": tuple(vocab.SIZES),
                  "motion": vocab.MOTIONS, "direction": (*vocab.DIRECTIONS, *_TURNS), "speed": tuple(vocab.SPEEDS),
                  "position": tuple(p for row in POSITIONS for p in row)}
JSON_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "objects": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": list(_OBJECT_FIELDS),
            "properties": {k: _enum(v) for k, v in _OBJECT_FIELDS.items()}}},
        "relations": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["type", "objects"],
            "properties": {"type": {"type": "string", "enum": ["collide", "behind"]},
                           "objects": {"type": "array", "items": {"type": "integer"}}}}},
        "background": _enum(vocab.BACKGROUNDS), "camera": _enum(vocab.CAMERAS), "aspect": _enum(ASPECTS),
        "seconds": {"type": ["number", "null"]}, "fps": {"type": ["number", "null"]},
        "speed": _enum(vocab.SPEEDS), "loop": {"type": "boolean"},
        "style": {"type": "array", "items": {"type": "string"}},
        "avoid": {"type": "array", "items": {"type": "string"}},
        "not_understood": {"type": "array", "items": {"type": "string"}},
        "english": {"type": "string"},
    },
}
JSON_SCHEMA["required"] = list(JSON_SCHEMA["properties"])


def _system_prompt() -> str:
    lists = "\n".join(f"- {k}: {', '.join(v)}" for k, v in _OBJECT_FIELDS.items())
    return f"""You turn a request for a short video (English or Chinese, often casual) into JSON for a renderer of
simple 2D scenes. Its world has only these values:
{lists}
- background: {', '.join(vocab.BACKGROUNDS)}
- camera: {', '.join(vocab.CAMERAS)}
Directions: slide takes any of the 8; bounce only left or right; orbit and spin clockwise or counterclockwise.
At most 4 objects, each of a different colour. Use null for everything the request does not say: never invent.
Map a word to the nearest value only when the meaning is clear (crimson -> red, orb -> ball, hopping -> bounce) and
list words you cannot map in not_understood. relations: "collide" for objects that hit each other, "behind" with
[i, j] when object i passes behind object j (indices into objects). aspect: "9:16" for vertical/portrait/phone,
"16:9" for landscape/widescreen, "1:1" for square, or the ratio written. seconds and fps: only if asked. speed: the
overall speed if asked (slow motion is slow). style: style words (cinematic, cartoon, ...) in English. avoid: things
the request says to leave out, in English. english: the scene part of the request in plain English.
Answer with JSON only, matching the schema."""


def _ask_llm(request: str, config: LLMConfig) -> dict:
    from openai import OpenAI  # optional: pip install "straightline[llm]"

    client = OpenAI(base_url=config.base_url, api_key=config.api_key or "none", timeout=config.timeout,
                    max_retries=config.max_retries)
    reply = client.chat.completions.create(
        model=config.model, temperature=0,
        messages=[{"role": "system", "content": _system_prompt()}, {"role": "user", "content": request}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "video_request", "strict": True, "schema": JSON_SCHEMA}})
    content = (reply.choices[0].message.content or "").strip()
    content = re.sub(r"^```(?:json)?\s*|\s*```$", "", content)    # some servers fence JSON despite the schema
    return json.loads(content)


def _check_llm_answer(answer) -> tuple[dict, dict, list[tuple[str, str]], str]:
    """The LLM's answer as (parse_prompt-shaped dict, params, things to avoid, English); ValueError naming the first
    bad field."""
    def bad(name, value, allowed):
        raise ValueError(f"{name}: {value!r} is not {allowed}")

    if not isinstance(answer, dict):
        bad("answer", type(answer).__name__, "a JSON object")
    if missing := [k for k in JSON_SCHEMA["required"] if k not in answer]:
        bad("answer", ", ".join(missing), "missing (required)")
    objects, notes, taken = [], [], set()
    if not isinstance(answer["objects"], list) or len(answer["objects"]) > 4:
        bad("objects", answer["objects"], "a list of at most 4 objects")
    for i, o in enumerate(answer["objects"]):
        if not isinstance(o, dict):
            bad(f"objects[{i}]", o, "an object")
        for key, allowed in _OBJECT_FIELDS.items():
            if o.get(key) is not None and o[key] not in allowed:
                bad(f"objects[{i}].{key}", o[key], f"one of {', '.join(allowed)} or null")
        o = {k: o.get(k) for k in _OBJECT_FIELDS}
        fits = {"slide": vocab.DIRECTIONS, "bounce": ("left", "right"), "orbit": _TURNS, "spin": _TURNS}
        if o["direction"] and o["direction"] not in fits.get(o["motion"], vocab.DIRECTIONS if not o["motion"] else ()):
            notes.append(f"objects[{i}]: a {o['motion']} has no direction '{o['direction']}'; ignored")
            o["direction"] = None
        if o["color"] in taken:
            notes.append(f"objects[{i}]: {o['color']} is already taken (objects are told apart by colour)")
            o["color"] = None
        taken.add(o["color"])
        objects.append(o | {"depth": None})
    relations = []
    for k, r in enumerate(answer["relations"] if isinstance(answer["relations"], list) else bad(
            "relations", answer["relations"], "a list")):
        pair = r.get("objects") if isinstance(r, dict) else None
        if r.get("type") not in ("collide", "behind") or not isinstance(pair, list) or len(pair) != 2 or \
                not all(isinstance(j, int) and 0 <= j < len(objects) for j in pair) or pair[0] == pair[1]:
            bad(f"relations[{k}]", r, "{type: collide|behind, objects: [i, j]} with two different object indices")
        relations.append({"type": r["type"], "objects": pair})
        if r["type"] == "behind":
            objects[pair[0]]["depth"], objects[pair[1]]["depth"] = "back", "front"
        for j in pair if r["type"] == "collide" else ():
            objects[j]["motion"] = objects[j]["motion"] or "slide"      # as parse_prompt: colliding objects move
    for key, allowed in (("background", vocab.BACKGROUNDS), ("camera", vocab.CAMERAS), ("aspect", ASPECTS),
                         ("speed", vocab.SPEEDS)):
        if answer[key] is not None and answer[key] not in allowed:
            bad(key, answer[key], f"one of {', '.join(allowed)} or null")
    for key, lo, hi in (("seconds", 0, 600), ("fps", 1, 120)):
        value = answer[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not lo < value <= hi):
            bad(key, value, f"a number in ({lo}, {hi}] or null")
    for key in ("style", "avoid", "not_understood"):
        if not isinstance(answer[key], list) or not all(isinstance(s, str) for s in answer[key]):
            bad(key, answer[key], "a list of strings")
    if not isinstance(answer["english"], str) or not isinstance(answer["loop"], bool):
        bad("english/loop", (answer["english"], answer["loop"]), "a string and a boolean")
    params = {k: answer[k] for k in ("aspect", "seconds", "fps", "camera", "speed") if answer[k] is not None}
    params |= {"style": answer["style"]} if answer["style"] else {}
    params |= {"loop": True} if answer["loop"] else {}
    parsed = {"objects": objects, "count": len(objects), "background": answer["background"],
              "camera": answer["camera"], "relations": relations, "notes": notes, "unknown": answer["not_understood"]}
    return parsed, params, [(item, item) for item in answer["avoid"]], answer["english"]


# --- expand -----------------------------------------------------------------------------------------------------

def _fixed_shape(given: dict, default_fps: float) -> dict:
    """What the caller's own fields fix of the scene: its aspect (from "size" WxH, else "aspect") and its seconds
    (from "seconds", else "frames" at "fps" or `default_fps`; 0 for an image). Values that do not parse are left
    out: validate_request names them."""
    fixed = {}
    shape = next((str(given[k]) for k in ("size", "aspect") if k in given), None)
    try:
        fixed |= {"aspect": shape} if shape and parse_aspect(shape) else {}
    except InvalidRequest:
        pass
    try:
        if "seconds" in given:
            seconds = float(given["seconds"])
        elif "frames" in given:
            seconds = (int(given["frames"]) - 1) / float(given.get("fps") or default_fps)
        else:
            return fixed
    except (TypeError, ValueError, ZeroDivisionError):
        return fixed
    if seconds >= 0:                     # the scene is timed for at most MAX_SCENE_SECONDS (_finish)
        fixed["seconds"] = seconds
    return fixed


def expand(request: str, *, seed: int = 0, backend: str = "embedded", llm: LLMConfig | None = None,
           encoder=None, similarity_threshold: float = SIMILARITY_THRESHOLD, level: str = "auto",
           default_negative: str = DEFAULT_NEGATIVE, default_aspect=DEFAULTS["aspect"],
           default_seconds: float = DEFAULTS["seconds"], default_fps: float = DEFAULTS["fps"],
           given: dict | None = None) -> Intent:
    """Understand a short or casual request (English, simplified or traditional Chinese).

    Args:
        request: what the user typed, e.g. "一個紅色的球在彈跳，豎屏，10秒" or "make it vertical and slow".
        seed: draws everything the request leaves open (same request and seed -> same Intent).
        backend: "embedded" (offline), "llm" (an OpenAI-compatible endpoint, falling back to embedded on any
            failure) or "auto" (llm when an endpoint is configured, else embedded).
        llm: the endpoint; None reads STRAIGHTLINE_LLM_BASE_URL / _MODEL / _API_KEY.
        encoder: a text.TextEncoder for word similarity; None loads the default one when a word needs it.
        similarity_threshold: least cosine similarity at which an unknown word is read as a known concept (> 1
            turns the mapping off).
        level: caption level of the prompt: "medium", "long", or "auto" (long when the request fixes something
            medium captions leave out).
        default_negative: the negative prompt before what the request says to avoid.
        default_aspect, default_seconds, default_fps: what the scene is framed and timed for when the request
            does not say (pass the model's defaults; they are not put in `params`).
        given: the fields the caller set itself (command-line flags, API fields, by validate_request's names),
            which win over the words. The scene, and so a long caption's events, is framed and timed for their
            size or aspect and their seconds or frames (seconds 0, an image: timed as if none were given),
            and Intent.request_fields leaves them out. Values that do not parse are left to validate_request.
    Returns:
        Intent.
    Raises:
        InvalidRequest: an empty request, more objects than ToyWorld holds, or an unknown backend or level.
    """
    if not isinstance(request, str) or not request.strip():
        raise InvalidRequest("prompt", request, "a non-empty request")
    if backend not in ("embedded", "llm", "auto"):
        raise InvalidRequest("intent_backend", backend, "embedded, llm or auto")
    if level not in ("auto", "short", "medium", "long"):
        raise InvalidRequest("caption_level", level, "auto, short, medium or long")
    finish = {"seed": seed, "level": level, "default_negative": default_negative, "default_aspect": default_aspect,
              "default_seconds": default_seconds, "default_fps": default_fps,
              "given": {k: v for k, v in (given or {}).items() if v not in (None, "")}}
    config = (llm or LLMConfig()).resolved()
    if backend == "auto":
        backend = "llm" if config.base_url else "embedded"
    fallback = None
    if backend == "llm":
        if not (config.base_url and config.model):
            fallback = "no LLM endpoint configured (STRAIGHTLINE_LLM_BASE_URL and STRAIGHTLINE_LLM_MODEL)"
        else:
            try:
                parsed, params, avoid, english = _check_llm_answer(_ask_llm(request, config))
                understood = [{"said": None, "meaning": f"{k}: {v}"} for k, v in params.items()]
                return _finish(request, "zh" if _CJK.search(request) else "en", parsed, params, avoid, understood,
                               [f"interpreted by the LLM back end ({config.model} at {config.base_url})"],
                               list(parsed["unknown"]), [], english, "llm", **finish)
            except ImportError:
                fallback = 'the LLM back end needs the openai package (pip install "straightline[llm]")'
            except Exception as e:  # noqa: BLE001 - any failure: the request still gets an answer, with the reason
                fallback = f"LLM back end failed ({type(e).__name__}: {str(e)[:200]})"
    intent = _embedded(request, encoder=encoder, similarity_threshold=similarity_threshold, **finish)
    if fallback:
        intent.notes.insert(0, f"{fallback}; used the embedded parser")
    return intent

