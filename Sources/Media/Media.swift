// The Media module (being written).
