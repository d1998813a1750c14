from longlore.core.text import EcomWorld, filler_text, public_domain_text


def test_public_domain_text() -> None:
    text = public_domain_text()
    assert text.startswith("In the beginning God created") and 500_000 < len(text.encode()) <= 1_000_000


def test_filler_is_seeded_and_sentence_aligned() -> None:
    a, b, c = filler_text(2000, seed=3), filler_text(2000, seed=3), filler_text(2000, seed=4)
    assert a == b and a != c
    assert a.endswith(".") and 1000 < len(a) <= 2000


def test_ecom_world_is_reproducible_and_consistent() -> None:
    w1, w2, w3 = EcomWorld.generate(seed=1), EcomWorld.generate(seed=1), EcomWorld.generate(seed=2)
    assert w1.products == w2.products and w1.products != w3.products
    leaves = {c.id for c in w1.leaves()}
    for product in w1.products:
        assert product.category in leaves
        brand = w1.brands[product.brand]
        assert w1.categories[product.category].parent in brand.top_categories  # brands sell in their own sectors
        assert product.name_en.startswith(brand.name_en) and product.name_zh.startswith(brand.name_zh)
    zh = w1.describe(w1.products[0], "zh")
    assert w1.products[0].name_zh in zh and w1.brands[w1.products[0].brand].origin_zh in zh
