//! Page templates (`*.html`, autoescaped): built into the binary, each shadowed by a file
//! of the same name in the override folder when there is one.
