"""Numbers every block must agree on about a credit decision."""

# A score is the probability of a good outcome; the ML method approves at score >= this.
# The pipeline records it with each version, serving reports it, the portal decides with it.
DEFAULT_THRESHOLD = 0.8
