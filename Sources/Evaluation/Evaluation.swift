// The Evaluation module (being written).
