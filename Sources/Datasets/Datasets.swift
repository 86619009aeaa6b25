// The Datasets module (being written).
