"""A seeded generator of realistic B2B funnel data in the canonical columns.

The generator simulates each deal through the five B2B stages (leads → prospects → opportunities →
negotiation → customers). At each stage the deal waits a gamma-distributed number of days and then
progresses or is lost; a deal whose next move would fall after the as-of date is still open.

Shape of the default data (``n_deals=3000``, ``seed=0``):

* 3 teams (East, North, South) of 5 reps each, 3 pipelines (new_business 60%, repurchase 25%,
  key_account 15%), deals created from 2023-01-01 to the as-of date 2024-06-30 (18 months);
* amounts lognormal in CNY (median about 150,000; key accounts 3× larger, repurchases smaller);
* stage skips (6% of progressing leads and prospects jump one stage) and regressions (5% of deals
  in negotiation fall back to opportunities once, then return);
* loss reasons per stage, including the seed template's 需求不明确, 预算不足, 方案未通过评审 and
  竞争对手介入; about 5% of losses have no reason recorded;
* scorecard and screening attributes (win_probability, strategic_value, follow_up_cost,
  payment_days, competitive_position, need_fit, decision_maker_engaged, budget_confirmed,
  expected_start) all driven by one latent deal quality that also drives progression, so they are
  correlated with winning; a few percent of deals miss a scoring or screening input.

Planted effects that the analyses must find:

* ``STRONG_REP`` (team East) converts clearly better than the team at every stage
  (+1.0 on the log-odds of each step); ``WEAK_REP`` (team North) clearly worse (−1.2).
* ``DROP_TEAM`` (South): in the last month of the data (2024-06), 75% of the moves from prospects
  to opportunities are lost instead, so its prospect → opportunity conversion drops.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SAMPLE_START = pd.Timestamp("2023-01-01")
SAMPLE_AS_OF = "2024-06-30"
SAMPLE_END = pd.Timestamp("2024-07-01")  # exclusive bound of SAMPLE_AS_OF
STAGES = ["leads", "prospects", "opportunities", "negotiation", "customers"]

TEAMS = {
    "East": ["Li Na", "Wang Fang", "Zhang Wei", "Liu Yang", "Chen Jing"],
    "North": ["Zhao Lei", "Yang Min", "Huang Tao", "Zhou Xin", "Wu Hao"],
    "South": ["Xu Li", "Sun Qiang", "Ma Lin", "Zhu Hong", "Hu Jun"],
}
STRONG_REP = "Li Na"
WEAK_REP = "Zhao Lei"
DROP_TEAM = "South"
DROP_MONTH = pd.Timestamp("2024-06-01")

PIPELINES = ["new_business", "repurchase", "key_account"]
_PIPELINE_P = [0.60, 0.25, 0.15]
_PIPELINE_LOGIT = np.array([0.0, 0.5, -0.2])
_PIPELINE_AMOUNT = np.array([1.0, 0.6, 3.0])

_BASE_P = np.array([0.62, 0.58, 0.55, 0.62])  # leads→prospects … negotiation→customers
_MEAN_DAYS = np.array([12.0, 20.0, 28.0, 21.0])
_SKIP_P = 0.06
_REGRESS_P = 0.05
_DROP_P = 0.75

LOSS_REASONS = {
    0: (["需求不明确", "无响应", "非目标客户"], [0.5, 0.3, 0.2]),
    1: (["预算不足", "需求不明确", "项目延期"], [0.45, 0.3, 0.25]),
    2: (["方案未通过评审", "竞争对手介入", "预算不足"], [0.45, 0.35, 0.2]),
    3: (["价格过高", "竞争对手介入", "商务条款未谈妥"], [0.4, 0.4, 0.2]),
}
_INDUSTRIES = ["制造业", "金融", "零售", "医疗", "教育", "能源", "物流"]
_CITIES = ["上海", "北京", "广州", "深圳", "杭州", "苏州", "成都", "武汉", "南京", "天津"]
_NAMES = ["恒达", "华信", "博远", "中科", "新航", "瑞丰", "金桥", "联创", "远景", "启明"]
_SUFFIXES = ["科技有限公司", "制造有限公司", "集团", "股份有限公司"]
_CONTACTS = ["王总", "李经理", "张主任", "刘总监", "陈工", "杨总", "赵经理"]
_NEEDS = ["生产数据采集与分析", "客户关系管理升级", "供应链可视化", "财务共享中心", "数据中台建设"]


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def generate_sample(n_deals: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate ``n_deals`` deals; return the canonical ``(deals, stage_events)`` tables.

    Deterministic for a given ``(n_deals, seed)``. See the module docstring for the shape of the
    data and the planted effects.
    """
    rng = np.random.default_rng(seed)
    horizon = (SAMPLE_END - SAMPLE_START) / pd.Timedelta(days=1)
    drop_from = (DROP_MONTH - SAMPLE_START) / pd.Timedelta(days=1)

    reps = [(team, rep) for team, names in TEAMS.items() for rep in names]
    rep_idx = rng.integers(0, len(reps), n_deals)
    team = np.array([t for t, _ in reps])[rep_idx]
    rep = np.array([r for _, r in reps])[rep_idx]
    rep_logit = np.select([rep == STRONG_REP, rep == WEAK_REP], [1.0, -1.2], 0.0)
    pipe_idx = rng.choice(3, n_deals, p=_PIPELINE_P)
    quality = rng.standard_normal(n_deals)
    created = rng.uniform(0, horizon - 0.5, n_deals)

    # --- simulate the stages ---------------------------------------------------------------
    t = created.copy()
    stage = np.zeros(n_deals, dtype=int)
    active = np.ones(n_deals, dtype=bool)
    lost = np.zeros(n_deals, dtype=bool)
    closed = np.full(n_deals, np.nan)
    ev_deal, ev_stage, ev_time = [np.arange(n_deals)], [np.zeros(n_deals, dtype=int)], [created]

    def add_events(idx: np.ndarray, stg: np.ndarray | int, when: np.ndarray) -> None:
        ev_deal.append(idx)
        ev_stage.append(np.broadcast_to(stg, idx.shape).astype(int))
        ev_time.append(when)

    def wait(k: int, size: int) -> np.ndarray:
        return rng.gamma(2.0, _MEAN_DAYS[k] / 2.0, size)

    for k in range(len(STAGES) - 1):
        idx = np.flatnonzero(active & (stage == k))
        if k == 3:  # a few deals fall back to opportunities once, then return
            back = idx[rng.random(idx.size) < _REGRESS_P]
            t_back = t[back] + wait(2, back.size) * 0.5
            seen = t_back < horizon
            add_events(back[seen], 2, t_back[seen])
            active[back[~seen]] = False
            t_return = t_back + wait(2, back.size) * 0.5
            returned = seen & (t_return < horizon)
            add_events(back[returned], 3, t_return[returned])
            stuck = back[seen & ~returned]
            stage[stuck], active[stuck] = 2, False
            t[back[returned]] = t_return[returned]
            idx = np.flatnonzero(active & (stage == k))
        t_next = t[idx] + wait(k, idx.size)
        logit = _logit(_BASE_P[k]) + 0.6 * quality[idx] + rep_logit[idx] + _PIPELINE_LOGIT[pipe_idx[idx]]
        progress = rng.random(idx.size) < 1 / (1 + np.exp(-logit))
        if k == 1:
            dropped = (team[idx] == DROP_TEAM) & (t_next >= drop_from) & (rng.random(idx.size) < _DROP_P)
            progress &= ~dropped
        seen = t_next < horizon
        active[idx[~seen]] = False  # still open in stage k at the as-of date

        gone = idx[seen & ~progress]
        lost[gone], closed[gone], active[gone] = True, t_next[seen & ~progress], False

        moved = seen & progress
        skip = (k < 2) & (rng.random(idx.size) < _SKIP_P)
        nxt = np.where(skip, k + 2, k + 1)
        add_events(idx[moved], nxt[moved], t_next[moved])
        stage[idx[moved]] = nxt[moved]
        t[idx[moved]] = t_next[moved]

    won = stage == len(STAGES) - 1
    closed[won] = t[won]

    # --- attributes ------------------------------------------------------------------------
    def noisy(scale: float = 0.8) -> np.ndarray:
        return quality + rng.normal(0, scale, n_deals)

    def cut(x: np.ndarray, edges: list[float], labels: list) -> np.ndarray:
        return np.asarray(labels, dtype=object)[np.digitize(x, edges)]

    amount = np.round(150_000 * _PIPELINE_AMOUNT[pipe_idx] * np.exp(0.9 * rng.standard_normal(n_deals) + 0.2 * quality), -2)
    win_probability = np.round(np.clip(1 / (1 + np.exp(-(noisy(0.9) - 0.3))), 0.02, 0.98), 2)
    reason_lists = [rng.choice(LOSS_REASONS[k][0], n_deals, p=LOSS_REASONS[k][1]) for k in range(4)]
    lost_reason = np.where(lost, np.choose(np.minimum(stage, 3), reason_lists), None).astype(object)
    lost_reason[lost & (rng.random(n_deals) < 0.05)] = None

    def ts(days: np.ndarray) -> pd.DatetimeIndex:
        return (SAMPLE_START + pd.to_timedelta(np.round(days * 1440), unit="min")).astype("datetime64[ns]")

    last_touch = np.where(np.isnan(closed), horizon, closed) - rng.uniform(0, 40, n_deals)
    deals = pd.DataFrame(
        {
            "deal_id": [f"D{i:07d}" for i in range(1, n_deals + 1)],
            "customer": (
                rng.choice(_CITIES, n_deals).astype(object)
                + rng.choice(_NAMES, n_deals).astype(object)
                + rng.choice(_SUFFIXES, n_deals).astype(object)
            ),
            "pipeline": np.asarray(PIPELINES, dtype=object)[pipe_idx],
            "team": team.astype(object),
            "rep": rep.astype(object),
            "created_at": ts(created),
            "amount": amount,
            "status": np.where(won, "won", np.where(lost, "lost", "open")).astype(object),
            "closed_at": ts(closed),
            "lost_reason": lost_reason,
            "industry": rng.choice(_INDUSTRIES, n_deals).astype(object),
            "contact": rng.choice(_CONTACTS, n_deals).astype(object),
            "need": rng.choice(_NEEDS, n_deals).astype(object),
            "win_probability": win_probability,
            "strategic_value": cut(noisy(), [-0.4, 0.9], ["ordinary", "potential", "benchmark"]),
            "follow_up_cost": cut(noisy(), [-0.5, 0.6], ["high", "medium", "low"]),
            "payment_days": cut(noisy(1.0), [-1.0, -0.3, 0.3, 1.0], [120, 90, 60, 45, 30]).astype(float),
            "competitive_position": cut(noisy(), [-0.5, 0.7], ["disadvantage", "parity", "advantage"]),
            "need_fit": cut(noisy(), [-0.5, 0.5], ["low", "medium", "high"]),
            "decision_maker_engaged": pd.array(noisy() > 0, dtype="boolean"),
            "budget_confirmed": pd.array(noisy() > 0.2, dtype="boolean"),
            "expected_start": ts(np.floor(created + rng.uniform(30, 240, n_deals))),
            "last_follow_up_at": ts(np.maximum(last_touch, created)),
        }
    )
    # A few deals miss one scoring input, so scoring has to say "unscored" and why.
    for column, share in (("win_probability", 0.015), ("strategic_value", 0.01), ("payment_days", 0.005),
                          ("need_fit", 0.03), ("decision_maker_engaged", 0.03), ("expected_start", 0.02)):
        deals.loc[rng.random(n_deals) < share, column] = None

    events = pd.DataFrame(
        {
            "deal_id": deals["deal_id"].to_numpy()[np.concatenate(ev_deal)],
            "stage": np.asarray(STAGES, dtype=object)[np.concatenate(ev_stage)],
            "entered_at": ts(np.concatenate(ev_time)),
        }
    )
    events = events.sort_values(["deal_id", "entered_at"], kind="stable").reset_index(drop=True)
    return deals, events
