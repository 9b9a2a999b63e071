#!/usr/bin/env python3
"""Tests of bench/plot_load_balancing.py: the specialisation score on tables whose mutual
information is known by hand, and the tables read from an --expert-loads file. Run by ctest
(plot_load_balancing); needs no matplotlib."""

import importlib.util
import math
import os
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "plot_load_balancing", os.path.join(HERE, "plot_load_balancing.py"))
plb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plb)


class MutualInformation(unittest.TestCase):
    def test_independent_domain_and_expert_share_nothing(self):
        # Every domain spreads over the experts in the same proportions (1:2:1).
        self.assertAlmostEqual(plb.mutual_information([[10, 20, 10], [30, 60, 30]]), 0.0)

    def test_two_domains_each_on_its_own_expert_give_one_bit(self):
        self.assertAlmostEqual(plb.mutual_information([[50, 0], [0, 50]]), 1.0)

    def test_three_domains_on_disjoint_experts_give_log2_3_bits(self):
        counts = [[5, 5, 0, 0, 0, 0], [0, 0, 5, 5, 0, 0], [0, 0, 0, 0, 5, 5]]
        self.assertAlmostEqual(plb.mutual_information(counts), math.log2(3))

    def test_half_mixed_table(self):
        # p(d, e) = [[3/8, 1/8], [1/8, 3/8]]: MI = 1 - H(1/4) bits.
        h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
        self.assertAlmostEqual(plb.mutual_information([[3, 1], [1, 3]]), 1 - h)


class Specialisation(unittest.TestCase):
    def loads(self):
        # Layer 0 separates the two sets, layer 2 routes them alike (tokens 4, top_k 2).
        return {"top_k": 2, "sets": [
            {"name": "bible_val", "tokens": 4,
             "layers": [{"layer": 0, "counts": [8, 0]}, {"layer": 2, "counts": [4, 4]}]},
            {"name": "code_val", "tokens": 4,
             "layers": [{"layer": 0, "counts": [0, 8]}, {"layer": 2, "counts": [4, 4]}]}]}

    def test_per_layer_bits_and_share_of_the_domain_entropy(self):
        scores = plb.specialisation(self.loads())
        self.assertEqual(sorted(scores), [0, 2])
        self.assertAlmostEqual(scores[0][0], 1.0)
        self.assertAlmostEqual(scores[0][1], 1.0)
        self.assertAlmostEqual(scores[2][0], 0.0)

    def test_tables_are_domain_by_expert(self):
        names, rows = plb.layer_tables(self.loads())[0]
        self.assertEqual(names, ["bible_val", "code_val"])
        self.assertEqual(rows, [[8, 0], [0, 8]])


if __name__ == "__main__":
    unittest.main()
