"""Writes a CRM export unlike funnelkit's sample (review3): `;`-separated, Chinese column names,
five stages named by their Chinese labels, day-first dates with `/`, amounts
like "¥1,234,500.00", percentages like "60%", blank cells, a few bad rows, a team that never lost a
deal (华南 South), one whose deals are all closed (West & Co), and hostile customer names.

Run: python tests/data/review3/make_review3.py  (deterministic; rewrites the two CSVs beside it)
"""
from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ["线索", "初步接洽", "方案报价", "商务谈判", "赢单"]  # the zh labels ("初步 接洽" is not read as 初步接洽)
TEAMS = {  # team -> (reps, kind)
    "North Star": (["Li Na", "Wang Wei", "Zhao Lei"], "normal"),
    "华南 South": (["陈静", "Liu Yang"], "never_lost"),
    "West & Co": (["O'Brien", "Smith-Jones"], "all_closed"),
}
AS_OF = datetime(2024, 12, 31)
HOSTILE = ["<b>Bold</b> 有限公司", "=SUM(A1) 贸易", "Müller & Söhne <i>GmbH</i>"]


def day_first(moment: datetime, with_time: bool) -> str:
    return moment.strftime("%d/%m/%Y %H:%M" if with_time else "%d/%m/%Y")


def money(value: float) -> str:
    return f"¥{value:,.2f}"


def main() -> None:
    rng = random.Random(3)
    deals, events = [], []
    number = 0
    for team, (reps, kind) in TEAMS.items():
        for rep in reps:
            for _ in range(70 if kind == "normal" else 45):
                number += 1
                deal_id = f"CN-{number:04d}"
                created = datetime(2024, 1, 2) + timedelta(days=rng.randrange(0, 320), hours=rng.randrange(8, 18),
                                                           minutes=rng.choice([0, 15, 30, 45]))
                furthest = rng.choices(range(5), weights=[2, 3, 3, 2, 4])[0]
                moments, at = [], created
                for stage in range(furthest + 1):
                    if stage:
                        at = at + timedelta(days=rng.randrange(3, 40), hours=rng.randrange(0, 6))
                    moments.append(at)
                if moments[-1] > AS_OF:
                    continue
                if furthest == 4:
                    status, closed = "Won", moments[-1]
                elif kind == "never_lost" or (kind == "normal" and rng.random() < 0.45):
                    status, closed = "Open", None
                else:
                    status = "Lost"
                    closed = moments[-1] + timedelta(days=rng.randrange(1, 20))
                    if closed > AS_OF:
                        status, closed = "Open", None
                if kind == "all_closed" and status == "Open":
                    status = "Lost"
                    closed = min(moments[-1] + timedelta(days=5), AS_OF)
                if kind == "never_lost" and status == "Lost":
                    status, closed = "Open", None
                amount = rng.choice([None] + [rng.randrange(20, 900) * 1000.0] * 12)
                deals.append({
                    "商机编号": deal_id,
                    "客户名称": rng.choice(HOSTILE) if number % 23 == 0 else f"客户{number:03d} 科技",
                    "团队": team,
                    "负责人": rep,
                    "创建日期": day_first(created, True),
                    "预计金额": "" if amount is None else money(amount),
                    "状态": status,
                    "关闭日期": day_first(closed, False) if closed else "",
                    "输单原因": rng.choice(["价格太高", "预算不足", "选择了竞争对手", ""]) if status == "Lost" else "",
                    "行业": rng.choice(["制造", "零售", "金融", ""]),
                    "成交概率": f"{rng.choice([10, 20, 40, 60, 80])}%",
                    "战略价值": rng.choice(["行业标杆", "潜力行业", "普通", ""]),
                    "跟进成本": rng.choice(["低", "中", "高"]),
                    "回款周期": rng.choice(["30", "60", "90", "180", ""]),
                    "竞争态势": rng.choice(["优势", "持平", "劣势"]),
                    "需求匹配度": rng.choice(["高", "中", "低"]),
                    "决策人已接触": rng.choice(["是", "否"]),
                    "预算已确认": rng.choice(["是", "否", ""]),
                    "预计启动": day_first(AS_OF + timedelta(days=rng.randrange(-60, 150)), False),
                    "最近跟进": day_first(moments[-1] + timedelta(days=rng.randrange(0, 30)), True)
                    if status == "Open" else "",
                })
                for stage, moment in enumerate(moments):
                    events.append({"商机编号": deal_id, "stage": STAGES[stage], "entered_at": day_first(moment, True)})
    # Bad rows, one per reason (each must be quarantined or named in an error, never analysed).
    template = dict(deals[0])
    deals += [
        {**template, "商机编号": "BAD-AMOUNT", "预计金额": "abc"},
        {**template, "商机编号": "BAD-NEGATIVE", "预计金额": "-¥5,000.00"},
        {**template, "商机编号": "BAD-DATE", "创建日期": "31/02/2024 10:00"},
        {**template, "商机编号": "BAD-STATUS", "状态": ""},
        {**template, "商机编号": "CN-0002"},  # duplicate id
    ]
    events += [
        {"商机编号": "CN-0003", "stage": "未知阶段", "entered_at": "01/06/2024 09:00"},
        {"商机编号": "GHOST-1", "stage": STAGES[0], "entered_at": "01/06/2024 09:00"},
        {"商机编号": "CN-0004", "stage": STAGES[1], "entered_at": "45/13/2024 09:00"},
    ]
    for name, rows in (("opportunities.csv", deals), ("stage_history.csv", events)):
        with open(HERE / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=";")
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
