from normrl.runs.local_jobs import report_failed


def test_report_failed_is_silent_when_every_job_finished(capsys):
    assert report_failed({"a": 0, "b": 0}) == 0
    assert report_failed({}) == 0
    assert capsys.readouterr().err == ""


def test_report_failed_names_the_failed_jobs_in_one_line(capsys):
    assert report_failed({"a": 0, "b": 1, "c": -9}) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'b': 1" in err and "'c': -9" in err and "'a'" not in err
