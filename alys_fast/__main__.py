from alys_fast.cli import main

raise SystemExit(main())
