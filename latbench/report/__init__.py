"""What people read: terminal tables of every command (terminal), the markdown report of any suites'
results (markdown) with its figures (plots), and what that report judges (analysis: suites and their
claims via latbench.claims, case effects, the paper's tables, cost predictors). No module here computes
a median itself (latbench.stats does)."""
