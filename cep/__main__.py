from cep.cli import main

raise SystemExit(main())
