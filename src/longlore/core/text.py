"""Natural text for long-context tasks and a seeded synthetic e-commerce world.

* :func:`public_domain_text` — a King James Bible excerpt (public domain, ~1 MB) shipped in the
  package, built by ``scripts/make_kjv_excerpt.sh`` from Debian's ``bible-kjv``.
* :class:`EcomWorld` — a reproducible catalogue (category tree, brands, products with attributes,
  functions, scenarios, audiences, origin), named in English and Chinese, that the RAM, benchmark,
  NER and RecGPT demos share. Vocabulary is hand-written; brand names are generated from syllables
  so they are unknown to any pretrained model (facts about them must come from the context).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from longlore.core.errors import LongloreError


@lru_cache(maxsize=1)
def public_domain_text() -> str:
    """The shipped KJV excerpt (Genesis ... Acts), one chapter per paragraph."""
    return resources.files("longlore.core").joinpath("data/kjv_excerpt.txt").read_text(encoding="utf-8")


def filler_text(n_chars: int, seed: int = 0) -> str:
    """A seeded contiguous passage of about ``n_chars`` characters, starting and ending at a sentence."""
    text = public_domain_text()
    if n_chars >= len(text):
        raise LongloreError(f"filler_text: asked for {n_chars} characters, the excerpt has {len(text)}")
    rng = random.Random(seed)
    start = rng.randrange(0, len(text) - n_chars)
    # Snap to sentence boundaries so planted facts are not glued into a half sentence.
    dot = text.find(". ", start)
    start = dot + 2 if 0 <= dot < start + 400 else start
    end = text.rfind(". ", start, start + n_chars)
    end = end + 1 if end > start else start + n_chars
    return " ".join(text[start:end].split())


# --- the e-commerce world --------------------------------------------------------------------
Pair = tuple[str, str]  # (English, Chinese)

# top category -> leaf -> (attributes {name: values}, functions, scenarios, audiences)
_TREE: dict[Pair, dict[Pair, dict[str, object]]] = {
    ("Electronics", "数码电器"): {
        ("headphones", "耳机"): {
            "attributes": {
                ("connection", "连接方式"): [("wireless", "无线"), ("wired", "有线"), ("bluetooth", "蓝牙")],
                ("color", "颜色"): [("black", "黑色"), ("white", "白色"), ("silver", "银色")],
            },
            "functions": [("noise cancelling", "降噪"), ("hi-fi sound", "高保真音质"), ("long battery life", "长续航")],
            "scenarios": [("commuting", "通勤"), ("running", "跑步"), ("office work", "办公")],
            "audiences": [("students", "学生"), ("music lovers", "音乐爱好者"), ("commuters", "上班族")],
        },
        ("smartphone", "手机"): {
            "attributes": {
                ("storage", "存储容量"): [("128GB", "128GB"), ("256GB", "256GB"), ("512GB", "512GB")],
                ("color", "颜色"): [("midnight blue", "午夜蓝"), ("graphite", "石墨色"), ("gold", "金色")],
            },
            "functions": [("fast charging", "快充"), ("night photography", "夜景拍摄"), ("5G", "5G网络")],
            "scenarios": [("travel", "旅行"), ("gaming", "游戏"), ("business", "商务")],
            "audiences": [("teenagers", "青少年"), ("seniors", "老年人"), ("professionals", "职场人士")],
        },
        ("power bank", "充电宝"): {
            "attributes": {
                ("capacity", "容量"): [("10000mAh", "10000毫安"), ("20000mAh", "20000毫安")],
                ("material", "材质"): [("aluminium", "铝合金"), ("plastic", "塑料")],
            },
            "functions": [("fast charging", "快充"), ("wireless charging", "无线充电")],
            "scenarios": [("travel", "旅行"), ("camping", "露营")],
            "audiences": [("travellers", "旅行者"), ("students", "学生")],
        },
    },
    ("Home", "家居生活"): {
        ("pillow", "枕头"): {
            "attributes": {
                ("material", "材质"): [("memory foam", "记忆棉"), ("latex", "乳胶"), ("buckwheat", "荞麦")],
                ("firmness", "软硬度"): [("soft", "柔软"), ("medium", "适中"), ("firm", "偏硬")],
            },
            "functions": [("neck support", "护颈"), ("cooling", "凉感"), ("anti-mite", "防螨")],
            "scenarios": [("bedroom", "卧室"), ("nap", "午休"), ("hotel", "酒店")],
            "audiences": [("office workers", "上班族"), ("seniors", "老年人"), ("children", "儿童")],
        },
        ("kettle", "电水壶"): {
            "attributes": {
                ("capacity", "容量"): [("1.5L", "1.5升"), ("1.7L", "1.7升")],
                ("material", "材质"): [("stainless steel", "不锈钢"), ("glass", "玻璃")],
            },
            "functions": [("temperature control", "控温"), ("keep warm", "保温"), ("auto shut-off", "自动断电")],
            "scenarios": [("kitchen", "厨房"), ("dormitory", "宿舍"), ("tea brewing", "泡茶")],
            "audiences": [("families", "家庭"), ("students", "学生"), ("tea drinkers", "爱茶人士")],
        },
        ("storage box", "收纳箱"): {
            "attributes": {
                ("material", "材质"): [("plastic", "塑料"), ("fabric", "布艺"), ("bamboo", "竹制")],
                ("size", "尺寸"): [("small", "小号"), ("large", "大号")],
            },
            "functions": [("stackable", "可叠加"), ("dustproof", "防尘")],
            "scenarios": [("wardrobe", "衣柜"), ("moving house", "搬家")],
            "audiences": [("families", "家庭"), ("renters", "租房族")],
        },
    },
    ("Beauty", "美妆个护"): {
        ("face cream", "面霜"): {
            "attributes": {
                ("skin type", "适用肤质"): [
                    ("dry skin", "干性肌肤"),
                    ("oily skin", "油性肌肤"),
                    ("sensitive skin", "敏感肌"),
                ],
                ("volume", "规格"): [("50ml", "50毫升"), ("100ml", "100毫升")],
            },
            "functions": [("moisturising", "保湿"), ("anti-ageing", "抗衰老"), ("whitening", "美白")],
            "scenarios": [("night care", "夜间护理"), ("winter", "冬季"), ("daily care", "日常护理")],
            "audiences": [("women", "女性"), ("men", "男性"), ("teenagers", "青少年")],
        },
        ("lipstick", "口红"): {
            "attributes": {
                ("shade", "色号"): [("coral", "珊瑚色"), ("brick red", "砖红色"), ("nude", "裸色")],
                ("finish", "质地"): [("matte", "哑光"), ("glossy", "滋润")],
            },
            "functions": [("long-lasting", "持久"), ("moisturising", "保湿")],
            "scenarios": [("dating", "约会"), ("office", "职场"), ("party", "派对")],
            "audiences": [("women", "女性"), ("students", "学生")],
        },
        ("shampoo", "洗发水"): {
            "attributes": {
                ("hair type", "适用发质"): [("oily hair", "油性发质"), ("dry hair", "干性发质")],
                ("volume", "规格"): [("400ml", "400毫升"), ("750ml", "750毫升")],
            },
            "functions": [("anti-dandruff", "去屑"), ("oil control", "控油"), ("repair", "修护")],
            "scenarios": [("daily care", "日常护理"), ("after swimming", "游泳后")],
            "audiences": [("men", "男性"), ("families", "家庭")],
        },
    },
    ("Clothing", "服饰鞋包"): {
        ("down jacket", "羽绒服"): {
            "attributes": {
                ("filling", "填充物"): [("white duck down", "白鸭绒"), ("goose down", "鹅绒")],
                ("length", "衣长"): [("short", "短款"), ("long", "长款")],
            },
            "functions": [("windproof", "防风"), ("water-repellent", "防泼水"), ("lightweight warmth", "轻暖")],
            "scenarios": [("winter commute", "冬季通勤"), ("skiing", "滑雪"), ("outdoor", "户外")],
            "audiences": [("women", "女性"), ("men", "男性"), ("children", "儿童")],
        },
        ("running shoes", "跑鞋"): {
            "attributes": {
                ("upper", "鞋面材质"): [("mesh", "网面"), ("knit", "飞织")],
                ("color", "颜色"): [("black", "黑色"), ("white", "白色"), ("neon green", "荧光绿")],
            },
            "functions": [("cushioning", "缓震"), ("breathable", "透气"), ("anti-slip", "防滑")],
            "scenarios": [("marathon", "马拉松"), ("gym", "健身房"), ("daily walking", "日常步行")],
            "audiences": [("runners", "跑者"), ("students", "学生")],
        },
        ("backpack", "双肩包"): {
            "attributes": {
                ("material", "材质"): [("nylon", "尼龙"), ("canvas", "帆布"), ("leather", "皮革")],
                ("capacity", "容量"): [("20L", "20升"), ("35L", "35升")],
            },
            "functions": [("waterproof", "防水"), ("laptop compartment", "电脑隔层")],
            "scenarios": [("school", "上学"), ("hiking", "徒步"), ("business trip", "出差")],
            "audiences": [("students", "学生"), ("travellers", "旅行者")],
        },
    },
    ("Food", "食品生鲜"): {
        ("green tea", "绿茶"): {
            "attributes": {
                ("grade", "等级"): [("premium", "特级"), ("first grade", "一级")],
                ("packaging", "包装"): [("tin", "罐装"), ("bag", "袋装")],
            },
            "functions": [("refreshing", "提神"), ("gift", "送礼")],
            "scenarios": [("afternoon tea", "下午茶"), ("office", "办公室"), ("festival gift", "节日送礼")],
            "audiences": [("tea drinkers", "爱茶人士"), ("seniors", "老年人")],
        },
        ("coffee beans", "咖啡豆"): {
            "attributes": {
                ("roast", "烘焙度"): [("light roast", "浅烘"), ("medium roast", "中烘"), ("dark roast", "深烘")],
                ("weight", "净含量"): [("250g", "250克"), ("500g", "500克")],
            },
            "functions": [("rich aroma", "香气浓郁"), ("low acidity", "低酸")],
            "scenarios": [("morning", "早晨"), ("office", "办公室")],
            "audiences": [("coffee lovers", "咖啡爱好者"), ("office workers", "上班族")],
        },
        ("mixed nuts", "每日坚果"): {
            "attributes": {
                ("weight", "净含量"): [("25g x 30", "25克x30袋"), ("500g", "500克")],
                ("flavour", "口味"): [("original", "原味"), ("lightly salted", "淡盐")],
            },
            "functions": [("healthy snack", "健康零食"), ("energy boost", "补充能量")],
            "scenarios": [("office snack", "办公零食"), ("hiking", "徒步")],
            "audiences": [("children", "儿童"), ("pregnant women", "孕妇"), ("office workers", "上班族")],
        },
    },
    ("Sports", "运动户外"): {
        ("yoga mat", "瑜伽垫"): {
            "attributes": {
                ("thickness", "厚度"): [("6mm", "6毫米"), ("10mm", "10毫米")],
                ("material", "材质"): [("TPE", "TPE"), ("natural rubber", "天然橡胶")],
            },
            "functions": [("anti-slip", "防滑"), ("shock absorption", "减震")],
            "scenarios": [("home workout", "居家健身"), ("yoga studio", "瑜伽馆")],
            "audiences": [("women", "女性"), ("beginners", "初学者")],
        },
        ("tent", "帐篷"): {
            "attributes": {
                ("capacity", "容纳人数"): [("2-person", "双人"), ("4-person", "四人")],
                ("season", "季节"): [("three-season", "三季"), ("four-season", "四季")],
            },
            "functions": [("waterproof", "防水"), ("quick setup", "速开")],
            "scenarios": [("camping", "露营"), ("beach", "海边")],
            "audiences": [("families", "家庭"), ("hikers", "徒步爱好者")],
        },
    },
    ("Pets", "宠物用品"): {
        ("cat food", "猫粮"): {
            "attributes": {
                ("age stage", "适用阶段"): [("kitten", "幼猫"), ("adult cat", "成猫")],
                ("weight", "净含量"): [("1.5kg", "1.5千克"), ("10kg", "10千克")],
            },
            "functions": [("hairball control", "去毛球"), ("grain-free", "无谷")],
            "scenarios": [("daily feeding", "日常喂养")],
            "audiences": [("cat owners", "猫主人")],
        },
        ("dog leash", "狗绳"): {
            "attributes": {
                ("length", "长度"): [("1.2m", "1.2米"), ("5m retractable", "5米伸缩")],
                ("material", "材质"): [("nylon", "尼龙"), ("leather", "皮革")],
            },
            "functions": [("reflective", "反光"), ("anti-pull", "防爆冲")],
            "scenarios": [("night walk", "夜间遛狗"), ("park", "公园")],
            "audiences": [("dog owners", "狗主人")],
        },
    },
}

_ORIGINS: list[Pair] = [
    ("China", "中国"),
    ("Japan", "日本"),
    ("Germany", "德国"),
    ("France", "法国"),
    ("Italy", "意大利"),
    ("South Korea", "韩国"),
    ("United States", "美国"),
    ("Sweden", "瑞典"),
    ("Denmark", "丹麦"),
    ("Australia", "澳大利亚"),
    ("Switzerland", "瑞士"),
    ("Thailand", "泰国"),
]
# Brand names: syllable pairs, each with a Chinese transliteration, so the Chinese name is stable.
_SYLLABLES: list[Pair] = [
    ("Lu", "鲁"),
    ("Mo", "莫"),
    ("Ra", "拉"),
    ("Ve", "维"),
    ("Ki", "奇"),
    ("No", "诺"),
    ("Za", "扎"),
    ("Ten", "腾"),
    ("Sol", "索"),
    ("Ari", "艾瑞"),
    ("Bel", "贝"),
    ("Cor", "柯"),
    ("Dax", "达克"),
    ("Fen", "芬"),
    ("Gal", "嘉"),
    ("Hal", "哈"),
    ("Ix", "伊克"),
    ("Jor", "乔"),
    ("Kel", "凯"),
    ("Lin", "琳"),
    ("Mar", "玛"),
    ("Nex", "耐克斯"),
    ("Or", "奥"),
    ("Pio", "皮奥"),
    ("Quin", "昆"),
    ("Ro", "罗"),
    ("Sy", "西"),
    ("Tor", "托"),
    ("Ul", "乌"),
    ("Vo", "沃"),
    ("Wen", "文"),
    ("Yo", "优"),
]


@dataclass(frozen=True)
class Category:
    id: int
    name_en: str
    name_zh: str
    parent: int | None  # None for a top-level category
    path_en: tuple[str, ...]
    path_zh: tuple[str, ...]


@dataclass(frozen=True)
class Brand:
    id: int
    name_en: str
    name_zh: str
    origin_en: str
    origin_zh: str
    top_categories: tuple[int, ...]


@dataclass(frozen=True)
class Product:
    id: int
    name_en: str
    name_zh: str
    brand: int
    category: int  # leaf category id
    attributes: tuple[tuple[str, str, str, str], ...]  # (attr_en, attr_zh, value_en, value_zh)
    functions: tuple[Pair, ...]
    scenarios: tuple[Pair, ...]
    audiences: tuple[Pair, ...]
    price: float


@dataclass
class EcomWorld:
    """A seeded synthetic e-commerce world; build one with :meth:`generate`."""

    seed: int
    categories: list[Category] = field(default_factory=list)
    brands: list[Brand] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)

    @classmethod
    def generate(cls, seed: int = 0, n_brands: int = 40, products_per_leaf: int = 12) -> EcomWorld:
        """Build the world; the same seed always gives the same world."""
        rng = random.Random(seed)
        world = cls(seed=seed)
        leaf_specs: dict[int, dict[str, object]] = {}
        for (top_en, top_zh), leaves in _TREE.items():
            top = Category(len(world.categories), top_en, top_zh, None, (top_en,), (top_zh,))
            world.categories.append(top)
            for (leaf_en, leaf_zh), spec in leaves.items():
                leaf = Category(len(world.categories), leaf_en, leaf_zh, top.id, (top_en, leaf_en), (top_zh, leaf_zh))
                world.categories.append(leaf)
                leaf_specs[leaf.id] = spec
        tops = [c.id for c in world.categories if c.parent is None]
        used: set[str] = set()
        while len(world.brands) < n_brands:
            (a_en, a_zh), (b_en, b_zh) = rng.sample(_SYLLABLES, 2)
            name_en = a_en + b_en.lower()
            if name_en in used:
                continue
            used.add(name_en)
            origin_en, origin_zh = rng.choice(_ORIGINS)
            world.brands.append(
                Brand(
                    len(world.brands),
                    name_en,
                    a_zh + b_zh,
                    origin_en,
                    origin_zh,
                    tuple(sorted(rng.sample(tops, rng.randint(1, 2)))),
                )
            )
        for leaf_id, spec in leaf_specs.items():
            leaf = world.categories[leaf_id]
            makers = [b for b in world.brands if leaf.parent in b.top_categories] or world.brands
            for _ in range(products_per_leaf):
                brand = rng.choice(makers)
                attrs = tuple((a_en, a_zh, *rng.choice(values)) for (a_en, a_zh), values in spec["attributes"].items())  # type: ignore[union-attr]
                functions = tuple(rng.sample(spec["functions"], rng.randint(1, min(2, len(spec["functions"])))))  # type: ignore[arg-type]
                scenarios = tuple(rng.sample(spec["scenarios"], 1))  # type: ignore[arg-type]
                audiences = tuple(rng.sample(spec["audiences"], 1))  # type: ignore[arg-type]
                key_attr = attrs[0]
                name_en = f"{brand.name_en} {key_attr[2]} {functions[0][0]} {leaf.name_en}"
                name_zh = f"{brand.name_zh}{key_attr[3]}{functions[0][1]}{leaf.name_zh}"
                world.products.append(
                    Product(
                        len(world.products),
                        name_en,
                        name_zh,
                        brand.id,
                        leaf_id,
                        attrs,
                        functions,
                        scenarios,
                        audiences,
                        round(rng.uniform(9, 999), 2),
                    )
                )
        return world

    def leaves(self) -> list[Category]:
        """Leaf categories (those products belong to)."""
        return [c for c in self.categories if c.parent is not None]

    def describe(self, product: Product, language: str = "en") -> str:
        """A one-paragraph natural-language description of a product (``en`` or ``zh``)."""
        brand, leaf = self.brands[product.brand], self.categories[product.category]
        if language == "zh":
            attrs = "，".join(f"{a_zh}为{v_zh}" for _, a_zh, _, v_zh in product.attributes)
            return (
                f"{product.name_zh}是{brand.origin_zh}品牌{brand.name_zh}推出的{leaf.name_zh}，{attrs}，"
                f"主打{'、'.join(f[1] for f in product.functions)}，适合{product.scenarios[0][1]}场景，"
                f"适用人群为{product.audiences[0][1]}，售价{product.price}元。"
            )
        attrs = ", ".join(f"{a_en} {v_en}" for a_en, _, v_en, _ in product.attributes)
        return (
            f"The {product.name_en} is a {leaf.name_en} from {brand.name_en}, a brand from {brand.origin_en}. "
            f"It features {attrs}, offers {' and '.join(f[0] for f in product.functions)}, is made for "
            f"{product.scenarios[0][0]} and suits {product.audiences[0][0]}. It costs {product.price} yuan."
        )
