from cartrescue.cli import main


def test_demo_prints_messages_and_summary(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "--- sms to +47******67" in out
    assert "sent: 4" in out
