"""Writes a Chinese CRM export (纷享销客 / 销售易 style) unlike funnelkit's other fixtures (review5).

* `商机列表.csv`: GBK (Excel on Chinese Windows), Windows line endings, Chinese headers
  (商机名称, 商机编号, 客户名称, 销售阶段, 负责人, 所属部门, 预计成交金额（元）, 创建时间, 结单日期,
  赢单/输单, 输单原因); 创建时间 like `2024/3/5 14:07`, 结单日期 like `2024年3月5日`; amounts like
  `￥1,234,500.00` (full-width: GBK has no ¥) and some `12.5万`, some blank; a few rows duplicated exactly; a total line at
  the bottom (合计); stages 初步接洽, 需求确认, 方案报价, 商务谈判, 赢单, 输单.
* `阶段变更记录.xlsx`: two sheets — a notes sheet (说明) first, then the log (商机编号, 变更前阶段,
  变更后阶段, 变更时间), the first change of a deal with a blank 变更前阶段.
* 4 departments, 15 reps; 大客户部 has every deal closed; rep 孙悦 has a single deal; hostile values in
  商机名称 and 客户名称 (`<script>`, `=HYPERLINK(...)`, a 300-character name).

Run: python tests/data/review5/make_review5.py  (deterministic; rewrites the two files beside it)
"""
from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
STAGES = ["初步接洽", "需求确认", "方案报价", "商务谈判"]
WON, LOST = "赢单", "输单"
DEPARTMENTS = {  # department -> reps with their number of deals; kind
    "华东销售部": ({"张伟": 30, "王芳": 28, "李娜": 25, "刘洋": 22}, "normal"),
    "华南销售部": ({"陈静": 26, "杨磊": 24, "黄敏": 20, "赵强": 18, "孙悦": 1}, "normal"),
    "华北销售部": ({"周杰": 24, "吴婷": 22, "郑浩": 20}, "normal"),
    "大客户部": ({"冯涛": 14, "何丽": 12, "马超": 10}, "all_closed"),
}
AS_OF = datetime(2024, 12, 31, 18, 0)
HOSTILE = ["<script>alert(1)</script>", '=HYPERLINK("http://evil.example","点击领取")',
           "超长客户名称" * 50]
REASONS = ["价格太高", "选择了竞争对手", "预算取消", "", "项目延期"]
COMPANIES = ["上海云启科技有限公司", "深圳华信电子股份有限公司", "北京中科数智信息技术有限公司",
             "杭州百川网络科技有限公司", "广州恒达制造有限公司", "成都天府软件有限公司"]


def slash_time(moment: datetime) -> str:
    """创建时间 as Excel on Chinese Windows writes it: no leading zeros, minutes only."""
    return f"{moment.year}/{moment.month}/{moment.day} {moment.hour}:{moment.minute:02d}"


def chinese_date(moment: datetime) -> str:
    """结单日期 as the CRM writes it: 2024年3月5日."""
    return f"{moment.year}年{moment.month}月{moment.day}日"


def amount_text(value: float, rng: random.Random) -> str:
    """Mostly ￥1,234,500.00; some in 万 (ten thousands); the caller leaves some blank."""
    if rng.random() < 0.15:
        return f"{value / 10000:g}万"
    return f"￥{value:,.2f}"  # GBK has no U+00A5: Excel writes the full-width ￥


def main() -> None:
    rng = random.Random(5)
    deals, changes = [], []
    number = 0
    for department, (reps, kind) in DEPARTMENTS.items():
        for rep, count in reps.items():
            for _ in range(count):
                number += 1
                deal_id = f"SJ2024{number:04d}"
                created = datetime(2024, 1, 2) + timedelta(days=rng.randrange(0, 270), hours=rng.randrange(8, 19),
                                                           minutes=rng.randrange(0, 60))
                furthest = rng.choices(range(4), weights=[3, 3, 3, 3])[0]
                moments, at = [created], created
                for _step in range(furthest):
                    at = at + timedelta(days=rng.randrange(3, 35), hours=rng.randrange(0, 8), minutes=rng.randrange(0, 60))
                    moments.append(at)
                roll = rng.random()
                if kind == "all_closed":
                    close = WON if furthest == 3 and roll < 0.6 else LOST
                elif furthest == 3 and roll < 0.55:
                    close = WON
                elif roll < 0.35:
                    close = LOST
                else:
                    close = None
                closed_at = None
                if close:
                    closed_at = moments[-1] + timedelta(days=rng.randrange(1, 20), hours=rng.randrange(0, 6))
                if moments[-1] > AS_OF or (closed_at and closed_at > AS_OF):
                    close, closed_at = None, None
                    if moments[-1] > AS_OF:
                        continue
                if kind == "all_closed" and not close:
                    continue
                previous = ""
                for step, moment in enumerate(moments):
                    changes.append([deal_id, previous, STAGES[step], moment])
                    previous = STAGES[step]
                if close:
                    changes.append([deal_id, previous, close, closed_at])
                value = rng.randrange(5, 400) * 2500
                amount = "" if rng.random() < 0.08 else amount_text(value, rng)
                name = f"{COMPANIES[number % len(COMPANIES)][:4]}{rng.choice(['ERP升级', 'CRM实施', '数据平台', '安全服务'])}项目"
                customer = COMPANIES[number % len(COMPANIES)]
                if number % 37 == 0:
                    name = HOSTILE[(number // 37) % 3]
                if number % 41 == 0:
                    customer = HOSTILE[(number // 41) % 3]
                deals.append([
                    name, deal_id, customer, close or STAGES[furthest], rep, department, amount,
                    slash_time(created), chinese_date(closed_at) if closed_at else "",
                    close or "", rng.choice(REASONS) if close == LOST else "",
                ])
    for index in (10, 77, 150):  # the CRM exported a few rows twice
        deals.insert(index + 1, list(deals[index]))
    total = sum(float(row[6].replace("￥", "").replace(",", "")) if row[6].startswith("￥")
                else float(row[6][:-1]) * 10000 if row[6].endswith("万") else 0.0 for row in deals)
    deals.append(["合计", "", "", "", "", "", f"￥{total:,.2f}", "", "", "", ""])
    header = ["商机名称", "商机编号", "客户名称", "销售阶段", "负责人", "所属部门", "预计成交金额（元）",
              "创建时间", "结单日期", "赢单/输单", "输单原因"]
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows([header] + deals)
    (HERE / "商机列表.csv").write_bytes(text.getvalue().encode("gbk"))
    book = Workbook()
    notes = book.active
    notes.title = "说明"
    notes.append(["导出说明"])
    notes.append(["导出时间", "2025-01-02 09:00"])
    notes.append(["导出人", "销售运营部"])
    notes.append(["备注", "本表记录商机阶段的每一次变更；第一次变更的变更前阶段为空。"])
    log = book.create_sheet("阶段变更记录")
    log.append(["商机编号", "变更前阶段", "变更后阶段", "变更时间"])
    for row in changes:
        log.append(row)
    for cell in log["D"][1:]:
        cell.number_format = "yyyy/m/d h:mm"
    book.properties.created = datetime(2025, 1, 2)  # a fixed timestamp keeps the file reproducible
    raw = io.BytesIO()
    book.save(raw)
    # the zip entries carry the time of writing: fixed, so a rerun rewrites the same bytes
    fixed = io.BytesIO()
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "docProps/core.xml":  # openpyxl stamps the time of saving as "modified"
                data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*", rb"\g<1>2025-01-02T00:00:00Z", data)
            target.writestr(zipfile.ZipInfo(entry.filename, date_time=(2025, 1, 2, 0, 0, 0)), data,
                            compress_type=zipfile.ZIP_DEFLATED)
    (HERE / "阶段变更记录.xlsx").write_bytes(fixed.getvalue())


if __name__ == "__main__":
    main()
