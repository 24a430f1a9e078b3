"""The labeled videos: frame extraction, video-level splits and evaluation."""
