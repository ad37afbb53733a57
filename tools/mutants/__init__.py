"""The mutation check (``make mutants``): deliberate safety bugs the verification must catch.

``catalog.py`` lists the mutants, each a set of exact search/replace pairs
against named files (a pair that no longer matches exactly once fails
loudly: the code moved and the mutant must be updated); ``run.py`` applies
them one at a time to a scratch copy of the package and the tests and runs
the checks against each; ``__main__`` is the command line.
"""
