"""Offline evaluation of the reader-interest term on a simulated click log.

The world: SOURCES sources and TOPICS topics, each with a hidden appeal (log-normal); a story's true
click probability is BASE_CTR x source appeal x topic appeal x the chance its position is seen
(1/log2(position + 2)). Every day brings CANDIDATES fresh stories (random source, topic, age, cluster
size); a policy picks and orders the top K; RECIPIENTS readers click by the true probabilities.

Two policies see the same days: today's ranking (worker.schedule.rank: freshness, cluster size,
source weight) and today's ranking x the learned reader interest (worker.interest, learned only from
its own past clicks, so its blind spots are its own). A new, appealing source appears halfway through
to show the floor: it must reach the top K without any history. Figures: expected reader clicks per
issue over the second half, the relative change, mean story age and the new source's first day in the
top K. Several seeds; mean and range.

    .venv/bin/python bench/bench_interest.py [--days 60] [--seeds 5] [--weight 0.5 1.0] [--spread 0.6]
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SOURCES, TOPICS, CANDIDATES, K, RECIPIENTS, BASE_CTR = 10, 8, 40, 12, 2000, 0.03


def simulate(seed: int, days: int, weight: float, learn_interest: bool, spread: float) -> dict:
    from worker import interest, schedule
    from worker.models import Article, Source

    rng = random.Random(seed)
    appeal_source = [rng.lognormvariate(0, spread) for _ in range(SOURCES + 1)]
    appeal_topic = [rng.lognormvariate(0, spread) for _ in range(TOPICS)]
    newcomer = SOURCES  # appears at days // 2, with the best appeal of all
    appeal_source[newcomer] = max(appeal_source) * 1.2
    sources = [Source(pk=i + 1, name=f"s{i}", weight=1.0) for i in range(SOURCES + 1)]
    log: list[tuple[int, interest.Observation]] = []
    start = datetime(2026, 1, 1, 7, tzinfo=UTC)
    clicks_second_half, ages, newcomer_first = [], [], None
    for day in range(days):
        now = start + timedelta(days=day)
        rng_day = random.Random(seed * 1000 + day)  # both policies see the same candidates
        readers = numpy.random.default_rng(seed * 1000 + day)
        pool = []
        for n in range(CANDIDATES):
            src = rng_day.randrange(SOURCES + (1 if day >= days // 2 else 0))
            article = Article(pk=n + 1, source=sources[src], title=f"d{day}-{n}",
                              published_at=now - timedelta(hours=rng_day.uniform(0, 24)))
            pool.append((article, src, rng_day.randrange(TOPICS), rng_day.choice([1, 1, 1, 2, 3])))
        model = interest.learn([interest.Observation(o.source, o.topics, day - d, o.impressions, o.clicks)
                                for d, o in log],
                               half_life_days=14, floor=0.5, cap=2.0, weight=weight) if learn_interest else None

        def score(entry, model=model, now=now):
            article, src, topic, cluster = entry
            base = schedule.rank(article, cluster, now)
            return base * (model.factor(str(src), [f"t{topic}"])[0] if model else 1.0)

        chosen = sorted(pool, key=score, reverse=True)[:K]
        expected = 0.0
        for position, (_article, src, topic, _) in enumerate(chosen):
            p = min(1.0, BASE_CTR * appeal_source[src] * appeal_topic[topic]) * interest.examination(position)
            expected += p * RECIPIENTS
            clicks = int(readers.binomial(RECIPIENTS, p))
            log.append((day, interest.Observation(str(src), (f"t{topic}",), 0.0,
                                                  RECIPIENTS * interest.examination(position), clicks)))
            if src == newcomer and newcomer_first is None:
                newcomer_first = day - days // 2
        if day >= days // 2:
            clicks_second_half.append(expected)
            ages.append(statistics.mean((now - a.published_at).total_seconds() / 3600 for a, *_ in chosen))
    return {"clicks": statistics.mean(clicks_second_half), "age": statistics.mean(ages),
            "newcomer_day": newcomer_first}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--weight", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--spread", type=float, default=0.6,
                        help="sigma of the log-normal appeals; 0 = readers have no preference at all")
    args = parser.parse_args()
    for key in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(key, None)
    os.environ.update(DJANGO_SETTINGS_MODULE="worker.settings", NEWSDIGEST_VAR_DIR=tempfile.mkdtemp(prefix="nd-"))
    import django

    django.setup()
    print(f"{SOURCES} sources (+1 new at day {args.days // 2}), {TOPICS} topics, {CANDIDATES} candidates/day, "
          f"top {K}, {RECIPIENTS} recipients, {args.days} days, {args.seeds} seeds, appeal spread {args.spread}; "
          f"figures over the second half")
    today = [simulate(seed, args.days, 0.0, False, args.spread) for seed in range(args.seeds)]
    rows = [("today's ranking", today)]
    for weight in args.weight:
        rows.append((f"+ reader interest (weight {weight:g})",
                     [simulate(seed, args.days, weight, True, args.spread) for seed in range(args.seeds)]))
    print(f"{'policy':34} {'clicks/issue':>14} {'vs today':>16} {'mean age h':>10} {'new source in top K after':>26}")
    for name, runs in rows:
        clicks = [r["clicks"] for r in runs]
        change = [100 * (r["clicks"] / t["clicks"] - 1) for r, t in zip(runs, today, strict=True)]
        days_in = [r["newcomer_day"] for r in runs]
        reached = [d for d in days_in if d is not None]
        newcomer = (f"{statistics.mean(reached):.1f} days ({len(reached)}/{len(runs)} runs)" if reached
                    else f"never (0/{len(runs)} runs)")
        print(f"{name:34} {statistics.mean(clicks):14.1f} "
              f"{statistics.mean(change):+6.1f}% [{min(change):+.0f},{max(change):+.0f}] "
              f"{statistics.mean(r['age'] for r in runs):10.1f} {newcomer:>26}")


if __name__ == "__main__":
    main()
