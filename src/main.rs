fn main() {
    std::process::exit(opsh::run(std::env::args_os()));
}
