from llmworks.cli import main

main()
