from lf_ray.cli import main

raise SystemExit(main())
