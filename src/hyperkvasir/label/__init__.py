"""The labeling loop: embeddings of every image (``embed``), nearest neighbours (``neighbours``), doubtful labels
from out-of-fold probabilities (``issues``) and the next images worth an expert's time (``queue``). Nothing here
writes to the release: caches go to the work dir, results to the output the user names."""
