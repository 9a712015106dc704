fn main() {
    std::process::exit(opsh::cli::main());
}
