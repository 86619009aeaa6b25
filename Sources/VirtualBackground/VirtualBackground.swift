// The VirtualBackground module (being written).
