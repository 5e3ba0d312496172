from botctl.cli.main import run

run()
