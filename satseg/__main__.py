from satseg.cli import main

main()
