"""What people read: terminal tables (terminal), the markdown report (markdown) with its figures
(plots), and the statistics that report judges (analysis). No module here computes a median itself."""
