//! Parses a query and prints the AST (debug aid).
fn main() {
    let q = std::env::args().nth(1).unwrap_or_default();
    println!("{:#?}", promql_parser::parser::parse(&q));
}
