"""Cross-checks of the transcribed paper tables: the papers repeat some numbers, and means must add up."""

import numpy as np
import pytest

from cosegkit import paper_numbers as pn


def test_every_table_names_its_source():
    for name, make in pn.PAPER_TABLES.items():
        frame = make()
        assert len(frame) > 0, name
        assert frame["source"].str.contains("Table").all(), name


def test_is_triplet_table1_internet_rows_repeat_in_table2():
    t1 = pn.is_triplet_table1()
    t2 = pn.is_triplet_table2()
    internet = t1[t1.test_dataset == "Internet"].reset_index(drop=True)
    dice = t2[t2.seg_loss == "Dice"].reset_index(drop=True)
    for column in ("val_P", "val_J", "test_P", "test_J"):
        np.testing.assert_allclose(internet[column], dice[column])


def test_cosegnet_internet_jaccard_means_are_the_class_averages():
    t2 = pn.cosegnet_table2()
    classes = t2[["Car_J", "Horse_J", "Airplane_J"]].mean(axis=1)
    np.testing.assert_allclose(t2["Mean_J"], classes, atol=0.015)


def test_cosegnet_internet_precision_means_match_except_where_the_paper_copied_other_means():
    t2 = pn.cosegnet_table2().set_index("method")
    classes = t2[["Car_P", "Horse_P", "Airplane_P"]].mean(axis=1)
    off = (t2["Mean_P"] - classes).abs() > 0.1
    # As printed, two rows' precision means are not their class averages; we keep the printed values.
    assert sorted(off[off].index) == ["*Quan et al. 2016", "Rubinstein et al. 2013"]


def test_cosegnet_numbers_repeated_across_tables_agree():
    voc = pn.cosegnet_table1().set_index("method").loc["CoSegNet (paper)", "J"]
    t5 = pn.cosegnet_table5().set_index("dataset")
    t6 = pn.cosegnet_table6().set_index("dataset")
    assert voc == pytest.approx(t5.loc["Pascal-VOC", "CoSegNet_J"])
    assert voc == pytest.approx(t6.loc["Pascal-VOC", "cT9"])
    internet_mean = pn.cosegnet_table2().set_index("method").loc["CoSegNet (paper)", "Mean_J"]
    assert internet_mean == pytest.approx(t5.loc["Internet", "CoSegNet_J"])
    msrc = pn.cosegnet_table4().set_index("method").loc["CoSegNet (paper)", "J"]
    assert msrc == pytest.approx(t5.loc["MSRC", "CoSegNet_J"])


def test_cosegnet_table6_internet_ct9_is_the_papers_inconsistency():
    # Table 6's Internet cT9 (CoSegNet's own setting) is Table 3's 0.72, not Tables 2 and 5's 0.77: kept as
    # printed, and said so where it is transcribed and where it is shown
    t6 = pn.cosegnet_table6().set_index("dataset")
    assert t6.loc["Internet", "cT9"] == pytest.approx(0.72)
    assert pn.cosegnet_table3().loc[0, "Mean_J"] == pytest.approx(0.72)
    assert pn.cosegnet_table5().set_index("dataset").loc["Internet", "CoSegNet_J"] == pytest.approx(0.77)
    assert pn.cosegnet_table2().set_index("method").loc["CoSegNet (paper)", "Mean_J"] == pytest.approx(0.77)
    for text in (pn.TABLE6_NOTE, pn.cosegnet_table6.__doc__):
        assert "0.72" in text and "0.77" in text and "Table 3" in text
