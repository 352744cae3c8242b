from bcc_edge.report.pareto import pareto_front


def test_dominated_points_are_off_the_front():
    # (size, accuracy): B is smaller and better than C; D is the most accurate; A the smallest
    costs = [100, 300, 400, 900]
    scores = [0.90, 0.97, 0.95, 0.99]
    assert pareto_front(costs, scores) == [True, True, False, True]


def test_equal_points_are_both_kept_and_single_point_is_front():
    assert pareto_front([5, 5], [0.9, 0.9]) == [True, True]
    assert pareto_front([1], [0.1]) == [True]
    assert pareto_front([], []) == []


def test_same_cost_lower_score_is_dominated():
    assert pareto_front([5, 5], [0.9, 0.8]) == [True, False]
