"""The feed: concepts read back, the taste model learns a hidden taste, reuse vs generate within budget,
persistence, events. A hashing embedder stands in for MiniLM so these run in seconds."""

import random
from dataclasses import asdict

import numpy as np
import pytest

from straightline.dit import PRESETS, DiT
from straightline.errors import InvalidRequest
from straightline.feed import (
    Concept,
    CostModel,
    Embedder,
    Feed,
    FeedConfig,
    FeedStore,
    SimulatedUser,
    TasteModel,
    _one_hot,
    candidates,
    concept_from_prompt,
    enjoyment,
    hashing_embedder,
    is_valid,
    mutate,
    population_taste,
    random_concept,
)
from straightline.pipeline import validate_request


@pytest.fixture(scope="module")
def embedder():
    return Embedder(hashing_embedder())


@pytest.fixture(scope="module")
def cost():
    return CostModel.from_model()


def make_feed(embedder, cost, library=60, store=None, pool=None, **config) -> Feed:
    feed = Feed(store=store, embedder=embedder, cost=cost, config=FeedConfig(**config), pool=pool)
    rng = random.Random(0)
    for i in range(library):
        c = random_concept(rng)
        feed.add_video(f"lib{i}", c.prompt, c)
    return feed


def watch(feed, user, video_id, fraction, liked=False):
    feed.record(user, "view_start", video_id)
    feed.record(user, "watch", video_id, fraction=fraction)
    if liked:
        feed.record(user, "like", video_id)


def test_concept_prompts_read_back():
    rng = random.Random(1)
    for _ in range(150):
        c = random_concept(rng)
        assert is_valid(c)
        assert concept_from_prompt(c.prompt) == c, c.prompt
    m = mutate(Concept("red", "ball", "bounce", "night", "static"), rng)
    assert sum(a != b for a, b in zip(asdict(m).values(), ("red", "ball", "bounce", "night", "static"))) == 1
    assert concept_from_prompt("") == Concept()


def test_candidates_use_the_llm_hook_and_survive_its_failure():
    rng = random.Random(0)
    liked = [Concept("red", "ball", "bounce", "night", "static")]
    ideas = candidates(rng, liked, 4, 4, llm=lambda prompts, n: ["a blue star spinning at dusk"] * n,
                       liked_prompts=["a red ball"], n_llm=2)
    assert ideas[-2:] == ["a blue star spinning at dusk"] * 2 and len(ideas) == 10
    assert sum(sum(a == b for a, b in zip(asdict(i).values(), asdict(liked[0]).values())) >= 3
               for i in ideas[4:8]) == 4          # mutations keep at least three attributes

    def broken(prompts, n):
        raise TimeoutError("no LLM today")
    assert len(candidates(rng, liked, 4, 4, llm=broken, liked_prompts=["x"])) == 8


def test_taste_model_learns_a_simulated_users_taste_in_a_few_hundred_views():
    rng = random.Random(0)
    user = SimulatedUser.draw(rng, population_taste(0), satiation=0.0)
    train = [random_concept(rng) for _ in range(300)]
    test = [random_concept(rng) for _ in range(300)]
    X = np.concatenate([np.ones((300, 1)), _one_hot(train)], 1)
    model = TasteModel(X.shape[1], prior=2.0, noise=0.4)
    for x, c in zip(X, train):
        model.update(x, enjoyment(*user.watch(c, [], rng)))
    predicted = np.concatenate([np.ones((300, 1)), _one_hot(test)], 1) @ model.mean()
    truth = [user.utility(c) for c in test]
    assert np.corrcoef(predicted, truth)[0, 1] > 0.85


def test_taste_model_takes_back_an_observation_exactly():
    model, x = TasteModel(4), np.array([1.0, 0.5, -0.2, 0.0])
    before = model.mean().copy()
    model.update(x, 1.5)
    assert not np.allclose(model.mean(), before)
    model.update(x, 1.5, weight=-1)
    assert np.allclose(model.mean(), before) and model.n == 0
    # the posterior narrows along what was observed
    model.update(x, 1.0)
    _, std = model.predict(np.stack([x, np.array([0.0, 0.0, 0.0, 1.0])]))
    assert std[0] < std[1]


def test_cost_model_counts_dit_flops_per_token():
    cost = CostModel(dit=asdict(PRESETS["tiny"]), flops_per_second=1e10, overhead_s=0.5)
    r = validate_request("a ball", seed=0, aspect="9:16", seconds=2, fps=12, resolution=128, steps=10, cfg=5)
    tokens = 7 * (224 // 16) * (128 // 16)        # 25 frames -> 7 latent frames of 14 x 8 patches
    per_token = DiT(PRESETS["tiny"]).flops_per_token(tokens)
    assert cost.flops(r) == pytest.approx(10 * 2 * tokens * per_token)
    assert cost.device_seconds(r) == pytest.approx(cost.flops(r) / 1e10 + 0.5)
    cost.observe(r, measured_s=0.5 + cost.flops(r) / 2e10, rate=1.0)   # the device was twice as fast
    assert cost.flops_per_second == pytest.approx(2e10)


def test_generation_stays_within_the_daily_budget(embedder, cost):
    budget = 2.5 * cost.device_seconds(validate_request("a ball", seed=0, aspect="9:16", seconds=2))
    feed = make_feed(embedder, cost, daily_budget_s=budget, gain_per_device_s=0.0, views_per_day=10)
    rng, spent, orders = random.Random(0), [], 0
    for i in range(12):
        for o in feed.plan("ann"):
            orders += 1
            feed.fulfil(o.ticket, f"gen{orders}")
        show = feed.next("ann")
        watch(feed, "ann", show.video_id, rng.random())
        spent.append(feed.budget("ann")["spent_s"])
    assert orders == 2 and max(spent) <= budget        # two fit, a third does not
    assert spent[0] <= budget * (0 + feed.config.horizon) / 10 + 1e-9   # paced: not all at once


def test_no_budget_or_a_high_price_means_reuse_only(embedder, cost):
    for config in ({"daily_budget_s": 0.0}, {"gain_per_device_s": 1e6}):
        feed = make_feed(embedder, cost, **config)
        for _ in range(5):
            assert feed.plan("bo") == []
            show = feed.next("bo")
            assert show.reason in ("popular", "reused")
            watch(feed, "bo", show.video_id, 0.5)


def test_fresh_mode_generates_every_view(embedder, cost):
    feed = make_feed(embedder, cost, reuse=False, daily_budget_s=float("inf"), horizon=2)
    assert feed.next("cy") is None                     # nothing generated yet: nothing to show
    for i in range(4):
        for o in feed.plan("cy"):
            feed.fulfil(o.ticket, f"{o.ticket}")
        show = feed.next("cy")
        assert show.reason == "generated for you"
        watch(feed, "cy", show.video_id, 0.7)


def test_a_close_existing_video_is_reused_instead_of_generated(embedder, cost):
    idea = Concept("red", "ball", "bounce", "night", "static")
    feed = make_feed(embedder, cost, library=0, pool=[idea], gain_per_device_s=0.0, n_random=1, n_mutations=0,
                     diversity=0.0, explore=0.0)
    feed.add_video("other", Concept("blue", "square", "slide", "sand", "pan left").prompt)
    feed.add_video("same", idea.prompt)             # the only idea the pool has exists already
    assert feed.plan("di") == []
    watch(feed, "di", "same", 1.0, liked=True)      # once seen (and loved), making a new one pays
    feed.end_view("di")
    orders = feed.plan("di")
    assert orders and orders[0].prompt == idea.prompt and orders[0].fields["aspect"] == "9:16"


def test_the_feed_learns_a_user_better_than_random(embedder, cost):
    feed = make_feed(embedder, cost, library=300, daily_budget_s=0.0)
    rng = random.Random(3)
    user = SimulatedUser.draw(rng, population_taste(0))
    shown, liked_feed = [], []
    for _ in range(80):
        show = feed.next("eve")
        c = feed.videos[show.video_id].concept
        fraction, liked = user.watch(c, shown, rng)
        shown.append(c)
        watch(feed, "eve", show.video_id, fraction, liked)
        liked_feed.append(user.utility(c))
    library = [v.concept for v in feed.videos.values()]
    assert np.mean(liked_feed[-40:]) > np.mean([user.utility(c) for c in library]) + 0.5


def test_events_are_checked_and_a_late_like_counts(embedder, cost):
    feed = make_feed(embedder, cost, library=5)
    with pytest.raises(InvalidRequest, match="event"):
        feed.record("fay", "love", "lib0")
    with pytest.raises(InvalidRequest, match="video_id"):
        feed.record("fay", "view_start", "nope")
    with pytest.raises(InvalidRequest, match="fraction"):
        feed.record("fay", "watch", "lib0", fraction=1.5)
    watch(feed, "fay", "lib0", 0.4)
    feed.record("fay", "view_start", "lib1")            # closes lib0's view: one observation
    st = feed.users["fay"]
    assert st.model.n == 1 and feed.stats("lib0") == {"views": 1, "mean_enjoyment": pytest.approx(0.4), "likes": 0}
    feed.record("fay", "like", "lib0")                   # liked after moving on
    assert st.model.n == 1 and feed.stats("lib0")["likes"] == 1
    assert feed.stats("lib0")["mean_enjoyment"] == pytest.approx(1.4)
    feed.record("fay", "skip", "lib1", fraction=0.1)
    assert st.model.n == 2 and st.open_view is None


def test_state_survives_a_restart(tmp_path, embedder, cost):
    path = tmp_path / "feed.sqlite"
    fresh = {"reuse": False, "daily_budget_s": float("inf")}
    feed = make_feed(embedder, cost, library=20, store=FeedStore(path), **fresh)
    orders = feed.plan("gus")
    feed.fulfil(orders[0].ticket, "made-0")
    show = feed.next("gus")
    assert show.video_id == "made-0"
    watch(feed, "gus", show.video_id, 0.9, liked=True)
    feed.end_view("gus")
    before = feed.users["gus"].model.mean(feed.population.mean())
    feed.store.close()

    again = Feed(store=FeedStore(path), embedder=embedder, cost=cost, config=FeedConfig(**fresh))
    st = again.users["gus"]
    assert len(again.videos) == 21 and st.model.n == 1 and show.video_id in st.seen
    assert np.allclose(st.model.mean(again.population.mean()), before)
    assert [o.ticket for o in st.queue] == [o.ticket for o in orders[1:]]
    spent = st.spent_s
    again.fulfil(orders[1].ticket, "made-1", device_s=3.0)       # an order from before the restart
    assert st.spent_s == pytest.approx(spent - orders[1].device_s + 3.0)
    assert again.next("gus").video_id == "made-1"
    assert again.videos["made-1"].source == "generated"
    assert [e[3] for e in again.store.events("gus")] == ["view_start", "watch", "like"]


def test_feed_page_calls_the_feed_api():
    from straightline.feed import feed_html
    page = feed_html("Shorts", api_url="/apps/shorts/feed", videos_url="/v1/videos")
    assert page.startswith("<!doctype html>") and "<title>Shorts</title>" in page
    assert 'API="/apps/shorts/feed"' in page and "'/events'" in page and "'/next'" in page


def test_an_apps_feed_orders_valid_requests_with_the_apps_fields(embedder, cost):
    from pathlib import Path

    from straightline.apps import load_app
    app = load_app(Path(__file__).parent.parent / "apps" / "vertical-shorts.toml")
    feed = make_feed(embedder, cost, library=5, request=app.fixed_fields(), reuse=False, daily_budget_s=None)
    orders = feed.plan("hal")
    assert len(orders) == feed.config.horizon
    request = validate_request(**orders[0].fields)
    assert (request.width, request.height, request.steps) == (128, 224, 20)
    with pytest.raises(InvalidRequest, match="aspect"):
        make_feed(embedder, cost, library=0, request={"aspect": "20:1"})
    with pytest.raises(InvalidRequest, match="feed.budget"):
        FeedConfig.from_dict({"budget": 3})


def test_the_budget_starts_again_each_day(embedder, cost):
    day = ["2026-01-01"]
    one = cost.device_seconds(validate_request("a ball", seed=0, **FeedConfig().request))
    feed = Feed(embedder=embedder, cost=cost, config=FeedConfig(reuse=False, daily_budget_s=2.5 * one),
                today=lambda: day[0])
    assert len(feed.plan("ivy")) == 2 and feed.plan("ivy") == []       # two videos fit, a third does not
    day[0] = "2026-01-02"
    assert feed.budget("ivy")["spent_s"] == 0.0
    assert len(feed.plan("ivy")) == 1                                  # two still queued: one more fits horizon
