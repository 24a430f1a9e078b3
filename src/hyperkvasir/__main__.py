from hyperkvasir.cli import main

raise SystemExit(main())
