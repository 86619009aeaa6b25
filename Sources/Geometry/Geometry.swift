// The Geometry module (being written).
