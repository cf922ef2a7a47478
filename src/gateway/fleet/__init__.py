"""The fleet: one stream per group and the schools' caps across replicas, and who streams where."""
