from scaletrain.driver.cli import main

main()
